"""What the validation cases share: their result row, the scenarios they build and the engine they run on.

The cases of :mod:`simfleet.worker.des.validation` (model v1) and :mod:`simfleet.worker.des.validation_v2` (model v2)
run their replications through :func:`replicate`, on the engine :func:`~simfleet.worker.des.validation.run_validation`
was given (the compiled kernel by default). Cases that watch each request (an observer) or read the event trace run
on the Python engine, the only one that has them.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.shared.messages.study import DEFAULT_ENGINE, Engine
from simfleet.worker.des import engines
from simfleet.worker.des.scenario import Scenario, parse_scenario

ENGINE: ContextVar[Engine] = ContextVar("validation_engine", default=DEFAULT_ENGINE)
"""The engine the cases run on (set by ``run_validation``)."""


def replicate(scenario: Scenario, seed: int, replication: int) -> ReplicationSummary:
    """Replication ``replication`` of ``scenario`` on the validation's engine."""
    return engines.run_replication(scenario, seed, replication, ENGINE.get())


@dataclass(frozen=True)
class CaseResult:
    """One row of the validation table; ``error`` is relative unless ``tolerance`` is an absolute one."""

    case: str
    theory: float
    measured: float
    error: float
    tolerance: float
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def single_resource(
    lam_per_s: float, work: Any, horizon_s: float, resource: dict[str, Any] | None = None, warmup_s: float = 0.0
) -> Scenario:
    """One request type of one tool on one rate resource ``cpu`` of capacity 1: Poisson arrivals of ``lam_per_s``."""
    return parse_scenario(
        {
            "name": "validation",
            "horizon_s": horizon_s,
            "warmup_s": warmup_s,
            "resources": {"cpu": {"capacity": 1.0, **(resource or {})}},
            "tools": {"job": {"work": {"cpu": work}}},
            "request_types": {"r": {"rate_per_min": lam_per_s * 60.0, "nodes": {"job": {"tool": "job"}}}},
        },
        source="<validation>",
    )


def figure(value: float | None) -> float:
    """A latency figure as a number: NaN (a failed case) when nothing completed."""
    return math.nan if value is None else value


def mean_over(scenario: Scenario, replications: int) -> tuple[float, list[ReplicationSummary]]:
    """The mean latency over ``replications`` replications (seed 2026), and their summaries."""
    runs = [replicate(scenario, 2026, i) for i in range(replications)]
    return sum(figure(r.overall.mean_s) for r in runs) / replications, runs


def relative(case: str, theory: float, measured: float, tolerance: float, detail: str = "") -> CaseResult:
    """A row compared by relative error."""
    error = abs(measured - theory) / abs(theory)
    return CaseResult(case, theory, measured, error, tolerance, error <= tolerance, detail)


def exact(case: str, theory: float, measured: float, tolerance: float, detail: str = "") -> CaseResult:
    """A row compared by absolute error."""
    error = abs(measured - theory)
    return CaseResult(case, theory, measured, error, tolerance, error <= tolerance, detail)
