"""Inverse search: the largest arrival rate at which an SLA still holds.

The search never interpolates its answer: it reports the largest *probed* rate that met the SLA and the smallest
probed rate that failed it, each with its measured metric and 95% confidence half-width, so the answer holds by
construction. Every probe uses the same seeds (common random numbers), so the metric is a smooth, monotone
function of the rate within the noise of one study and probes can be compared with each other.

Choosing the probes. Queueing theory says no rate above the capacity bound U = min over resources of C_r /
(mean work per request on r) is stable, and near saturation latency figures grow like 1 / (1 − λ/U). So 1/metric is
modelled as metric = a + b / (1 − λ/U), where a absorbs what does not grow with load. The search starts at U/2,
fits a and b to the two probes nearest the threshold (a = 0 while it has one), and then probes just below and
above the predicted crossing (± 40% of the tolerance), which closes a bracket of relative width ``rel_tol`` in a
few probes when the model fits; when it does not, the probes fall back towards bisection of the current bracket.
A probe passes when the mean over replications of the per-replication metric is at or below the threshold; an
unstable probe fails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.messages.des import ReplicationSummary, Stat
from simfleet.worker.des.aggregate import scalar_stats
from simfleet.worker.des.limits import MAX_REPLICATIONS, METRICS, SEED_MAX, check_integer, check_number
from simfleet.worker.des.scenario import Scenario, as_scenario


class Evaluator(Protocol):
    """Runs replications ``first`` .. ``first + replications - 1`` of a scenario with a seed; their summaries in order.

    Replication ``i`` of a seed is the same run wherever it runs, so a probe that needs more replications asks for
    the next indices, and every probe of a search uses the same indices (common random numbers).
    """

    def __call__(self, scenario: Scenario, replications: int, seed: int, first: int = 0, /) -> list[ReplicationSummary]:
        """The summaries of the replications, in index order."""
        ...


@dataclass(frozen=True)
class Probe:
    """One probed rate and what was measured there."""

    rate_per_min: float
    metric_s: float
    ci95_s: float | None
    passed: bool
    stable: bool
    reason: str | None = None
    """Why ``metric_s`` is not a finite figure: ``unstable`` or ``no request completed`` (None when it is)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for strict JSON: a metric that is not finite is ``None``, with ``reason`` saying why."""
        data = asdict(self)
        if not math.isfinite(self.metric_s):
            data["metric_s"] = None
            data["ci95_s"] = None
            data["reason"] = self.reason or "unstable"
        return data


@dataclass
class SlaResult:
    """The answer of an SLA search."""

    request_type: str
    metric: str
    threshold_s: float
    scale: str
    capacity_bound_per_min: float
    rel_tol: float
    best_passing: Probe | None
    first_failing: Probe | None
    converged: bool
    probes: list[Probe] = field(default_factory=list)

    @property
    def bracket_rel_width(self) -> float | None:
        """(first failing − best passing) / best passing, when both exist."""
        if self.best_passing is None or self.first_failing is None:
            return None
        return (self.first_failing.rate_per_min - self.best_passing.rate_per_min) / self.best_passing.rate_per_min

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output; ``probes`` lists every probe in the order it ran."""
        data = asdict(self)
        data["best_passing"] = None if self.best_passing is None else self.best_passing.to_dict()
        data["first_failing"] = None if self.first_failing is None else self.first_failing.to_dict()
        data["probes"] = [p.to_dict() for p in self.probes]
        data["bracket_rel_width"] = self.bracket_rel_width
        return data


def metric_of(summary: ReplicationSummary, request_type: str, metric: str) -> float:
    """The SLA metric (seconds) of one replication summary; infinite when unstable or nothing completed."""
    if not summary.stable:
        return math.inf
    value = summary.types[request_type].figure("mean_s" if metric == "mean" else f"{metric}_s")
    return math.inf if value is None else float(value)


def search_sla(
    scenario: Scenario | str | Path | dict[str, Any],
    evaluate: Evaluator,
    *,
    request_type: str,
    metric: str = "p95",
    threshold_s: float,
    replications: int = 5,
    seed: int = 0,
    rel_tol: float = 0.01,
    scale: str = "type",
    max_probes: int = 16,
) -> SlaResult:
    """Find the largest rate (requests/min) meeting ``metric`` < ``threshold_s`` for ``request_type``.

    Args:
        scenario: the base scenario (or its YAML file, or its plain data); only the searched rate changes between
            probes.
        evaluate: runs the replications of one probe (locally, or on the fleet in parallel).
        request_type: the type whose latency figure is the SLA.
        metric: ``mean``, ``p50``, ``p95`` or ``p99``.
        threshold_s: the SLA threshold in seconds.
        replications: replications per probe.
        seed: the study seed, the same at every probe.
        rel_tol: stop when (first failing − best passing) / best passing <= rel_tol.
        scale: ``type`` searches ``request_type``'s own rate; ``mix`` the total rate of every type at fixed shares.
        max_probes: give up (``converged`` false) after this many probes.

    Raises:
        ConfigError: an argument out of range, naming it, before any probe runs.
    """
    scenario = as_scenario(scenario)
    _check_arguments(scenario, request_type, metric, threshold_s, replications, seed, rel_tol, scale, max_probes)
    bound = scenario.capacity_bound_per_min(request_type if scale == "type" else None)
    if math.isfinite(bound) and bound <= 0:
        raise ConfigError(
            "the other request types already use the whole capacity of a resource that "
            f"{request_type!r} needs, so no rate of it can be stable",
            source=scenario.source,
            key=f"request_types.{request_type}",
        )
    if not math.isfinite(bound):
        raise ConfigError(
            f"request type {request_type!r} puts no work on any rate resource, so no rate bound exists",
            source=scenario.source,
            key=f"request_types.{request_type}",
        )
    probes: list[Probe] = []

    def run_probe(rate: float) -> None:
        probe_scenario = scenario.with_rate(rate, request_type if scale == "type" else None)
        summaries = evaluate(probe_scenario, replications, seed)
        values = [metric_of(s, request_type, metric) for s in summaries]
        stable = all(math.isfinite(v) for v in values)
        reason = None
        if not all(s.stable for s in summaries):
            reason = "unstable"
        elif not stable:
            reason = "no request completed"
        stat = scalar_stats(values) if stable else Stat(mean=math.inf, std=None, ci95=None, n=0)
        mean = math.inf if stat.mean is None else float(stat.mean)
        probes.append(Probe(rate, mean, stat.ci95, stable and mean <= threshold_s, stable, reason))

    run_probe(bound / 2.0)
    while len(probes) < max_probes:
        lo, hi = _bracket(probes)
        if lo is not None and hi is not None and (hi.rate_per_min - lo.rate_per_min) <= rel_tol * lo.rate_per_min:
            break
        run_probe(_next_rate(probes, lo, hi, bound, threshold_s, rel_tol))
    lo, hi = _bracket(probes)
    converged = lo is not None and hi is not None and (hi.rate_per_min - lo.rate_per_min) <= rel_tol * lo.rate_per_min
    return SlaResult(request_type, metric, threshold_s, scale, bound, rel_tol, lo, hi, converged, probes)


def _check_arguments(
    scenario: Scenario,
    request_type: Any,
    metric: Any,
    threshold_s: Any,
    replications: Any,
    seed: Any,
    rel_tol: Any,
    scale: Any,
    max_probes: Any,
) -> None:
    """Refuse a bad argument of :func:`search_sla` by name, before any probe runs."""
    source = scenario.source
    if not isinstance(request_type, str) or request_type not in scenario.request_types:
        raise ConfigError(
            f"unknown request type {printable(repr(request_type))} (declared: {', '.join(scenario.request_types)})",
            source=source,
            key="request_type",
        )
    if metric not in METRICS:
        raise ConfigError(
            f"must be one of {', '.join(METRICS)}, got {printable(repr(metric))}", source=source, key="metric"
        )
    check_number(threshold_s, source, "threshold_s", positive=True)
    check_integer(replications, source, "replications", minimum=1, maximum=MAX_REPLICATIONS)
    check_integer(seed, source, "seed", maximum=SEED_MAX)
    if check_number(rel_tol, source, "rel_tol", positive=True) >= 1.0:
        raise ConfigError(f"must be below 1, got {rel_tol!r}", source=source, key="rel_tol")
    if scale not in ("type", "mix"):
        raise ConfigError(f"must be 'type' or 'mix', got {printable(repr(scale))}", source=source, key="scale")
    check_integer(max_probes, source, "max_probes", minimum=1, maximum=1000)


def _bracket(probes: list[Probe]) -> tuple[Probe | None, Probe | None]:
    passing = [p for p in probes if p.passed]
    failing = [p for p in probes if not p.passed]
    lo = max(passing, key=lambda p: p.rate_per_min) if passing else None
    above = [p for p in failing if lo is None or p.rate_per_min > lo.rate_per_min]
    hi = min(above, key=lambda p: p.rate_per_min) if above else None
    return lo, hi


def _predict(probes: list[Probe], bound: float, threshold_s: float) -> float:
    """The rate where the metric crosses the threshold under the model metric = a + b / (1 − rate / bound).

    The two finite probes nearest the threshold fix a and b; with a single probe a = 0 (pure queueing growth).
    The constant a absorbs the part of the latency that does not grow with load (service times, fixed stages).
    """
    usable = [p for p in probes if p.stable and math.isfinite(p.metric_s) and p.rate_per_min < bound]
    points = sorted(((p.rate_per_min, p.metric_s) for p in usable), key=lambda point: abs(point[1] - threshold_s))
    if not points:
        return math.nan
    growth = [(1.0 / (1.0 - rate / bound), metric) for rate, metric in points]
    h1, m1 = growth[0]
    second = next(((h, m) for h, m in growth[1:] if h != h1), None)
    if second is None:
        a, b = 0.0, m1 / h1
    else:
        h2, m2 = second
        b = (m2 - m1) / (h2 - h1)
        a = m1 - b * h1
    if b <= 0:
        return math.nan
    target = (threshold_s - a) / b
    return bound * (1.0 - 1.0 / target) if target > 1.0 else math.nan


def _next_rate(
    probes: list[Probe], lo: Probe | None, hi: Probe | None, bound: float, threshold_s: float, rel_tol: float
) -> float:
    step = 0.4 * rel_tol
    predicted = _predict(probes, bound, threshold_s)
    if lo is not None and hi is not None:
        low, high = lo.rate_per_min, hi.rate_per_min
        if math.isnan(predicted):
            return (low + high) / 2.0
        margin = 0.05 * (high - low)
        predicted = min(max(predicted, low + margin), high - margin)
        # Close the bracket from the side the prediction sits nearer to.
        rate = predicted * (1.0 - step) if predicted - low > high - predicted else predicted * (1.0 + step)
        return rate if low < rate < high else (low + high) / 2.0
    if lo is not None:
        # Only passing probes so far: aim just above the predicted crossing, never at or past the capacity bound.
        rate = lo.rate_per_min * 2.0 if math.isnan(predicted) else predicted * (1.0 + step)
        rate = max(rate, lo.rate_per_min * (1.0 + rel_tol))
        return rate if rate < bound else (lo.rate_per_min + bound) / 2.0
    # Only failing probes so far: aim just below the predicted crossing, at most half the lowest failing rate.
    assert hi is not None
    rate = predicted * (1.0 - step)
    return rate if 0.0 < rate < hi.rate_per_min else hi.rate_per_min / 2.0
