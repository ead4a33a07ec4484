"""Rate sweeps (the forward question at several loads) and the results of sweeps and SLA searches as JSON and CSV.

A sweep runs the same scenario at each arrival rate with the same seeds (common random numbers), either scaling one
request type's rate or the whole mix at fixed shares, and keeps each rate's aggregate. Rows are flat: one per
(rate, request type) with every latency figure's mean and 95% half-width and each resource's mean utilisation.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simfleet.producer.report import json_text
from simfleet.producer.sla import Evaluator, SlaResult
from simfleet.shared.messages import to_wire
from simfleet.shared.messages.des import LatencyAggregate, Stat, StudyAggregate
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.scenario import Scenario

FIGURES = ("mean_s", "p50_s", "p95_s", "p99_s", "throughput_per_min")


@dataclass
class SweepResult:
    """The aggregate of a study at each swept rate."""

    scenario: str
    scale: str
    rates_per_min: list[float]
    aggregates: list[StudyAggregate]

    def resources(self) -> list[str]:
        """Resource names, in scenario order."""
        return list(self.aggregates[0].resources) if self.aggregates else []

    def request_types(self) -> list[str]:
        """Request type names plus ``(all)``."""
        return [*self.aggregates[0].types, "(all)"] if self.aggregates else []

    def figure(self, request_type: str, name: str) -> list[Stat]:
        """One figure's statistics (mean, std, ci95, n) for a request type at every rate."""
        return [_block(a, request_type).figure(name) for a in self.aggregates]

    def utilisation(self) -> list[list[float]]:
        """Mean utilisation, one row per resource, one column per rate (NaN where no replication measured it)."""
        means = [[a.resources[r]["utilisation"].mean for a in self.aggregates] for r in self.resources()]
        return [[math.nan if m is None else m for m in row] for row in means]

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows: one per (rate, request type)."""
        rows = []
        for rate, agg in zip(self.rates_per_min, self.aggregates, strict=True):
            for name in self.request_types():
                block = _block(agg, name)
                row: dict[str, Any] = {"rate_per_min": rate, "request_type": name, "stable": agg.stable}
                for figure in FIGURES:
                    row[figure] = block.figure(figure).mean
                    row[f"{figure}_ci95"] = block.figure(figure).ci95
                for resource in self.resources():
                    row[f"utilisation_{resource}"] = agg.resources[resource]["utilisation"].mean
                rows.append(row)
        return rows

    def write_json(self, path: Path) -> None:
        """Every aggregate, as JSON."""
        data = {"scenario": self.scenario, "scale": self.scale, "rates_per_min": self.rates_per_min}
        path.write_text(json_text({**data, "aggregates": [to_wire(a) for a in self.aggregates]}) + "\n")

    def write_csv(self, path: Path) -> None:
        """The flat rows, as CSV."""
        write_rows_csv(self.to_rows(), path)


def _block(agg: StudyAggregate, request_type: str) -> LatencyAggregate:
    """A request type's latency block of an aggregate, or the overall one for ``(all)``."""
    return agg.overall if request_type == "(all)" else agg.types[request_type]


def sweep_rates(
    scenario: Scenario,
    rates_per_min: list[float],
    evaluate: Evaluator,
    *,
    replications: int,
    seed: int,
    request_type: str | None = None,
) -> SweepResult:
    """Run ``replications`` replications at each rate; ``request_type`` None scales the whole mix."""
    aggregates = [
        aggregate(evaluate(scenario.with_rate(rate, request_type), replications, seed)) for rate in rates_per_min
    ]
    return SweepResult(scenario.name, request_type or "mix", list(rates_per_min), aggregates)


def sla_rows(result: SlaResult) -> list[dict[str, Any]]:
    """One row per probe of an SLA search, in the order they ran, with each term's mean and 95% half-width."""
    rows = []
    for i, probe in enumerate(result.probes):
        row: dict[str, Any] = {
            "probe": i + 1,
            "rate_per_min": probe.rate_per_min,
            "verdict": probe.verdict,
            "undecided_at_cap": probe.capped,
            "replications": probe.replications,
            "stable": probe.stable,
        }
        for outcome in probe.terms:  # a figure that is not finite is None, with its reason
            name = f"{outcome.term.request_type}_{outcome.term.metric}"
            data = outcome.to_dict()
            row.update({f"{name}_s": data["mean"], f"{name}_ci95_s": data["ci95"],
                        f"{name}_threshold_s": outcome.term.threshold_s, f"{name}_verdict": outcome.verdict,
                        f"{name}_reason": outcome.reason})  # fmt: skip
        rows.append(row)
    return rows


def write_rows_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows with the same keys, as CSV with a header."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
