"""Rate sweeps (the forward question at several loads) and the results of sweeps and SLA searches as JSON and CSV.

A sweep runs the same scenario at each arrival rate with the same seeds (common random numbers), either scaling one
request type's rate or the whole mix at fixed shares, and keeps each rate's aggregate. Rows are flat: one per
(rate, request type) with every latency figure's mean and 95% half-width and each resource's mean utilisation.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
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
    """The aggregate of a study at each swept rate, with its warnings and where its tools wait.

    ``warnings`` holds, per rate, the lines of :func:`~simfleet.producer.diagnostics.saturation` (near saturation)
    and of :func:`~simfleet.producer.diagnostics.sample_warnings`; ``waiting`` per rate the tools held back at each
    resource (:func:`~simfleet.producer.diagnostics.waiting_by_resource`). Both are empty lists when not computed.
    """

    scenario: str
    scale: str
    rates_per_min: list[float]
    aggregates: list[StudyAggregate]
    warnings: list[list[str]] = field(default_factory=list)
    waiting: list[dict[str, float]] = field(default_factory=list)
    candidates: list[str | None] = field(default_factory=list)
    """Per rate, the bottleneck candidate (:func:`~simfleet.producer.diagnostics.bottleneck_candidate`)."""

    @property
    def near_saturation(self) -> list[bool]:
        """Per rate: stable, but near saturation by one of the rules of ``diagnostics.saturation``."""
        if not self.warnings:
            return [False] * len(self.rates_per_min)
        return [any(w.startswith("near saturation") for w in lines) for lines in self.warnings]

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
        near = self.near_saturation
        for i, (rate, agg) in enumerate(zip(self.rates_per_min, self.aggregates, strict=True)):
            for name in self.request_types():
                block = _block(agg, name)
                row: dict[str, Any] = {"rate_per_min": rate, "request_type": name, "stable": agg.stable,
                                       "near_saturation": near[i]}  # fmt: skip
                for figure in FIGURES:
                    row[figure] = block.figure(figure).mean
                    row[f"{figure}_ci95"] = block.figure(figure).ci95
                for resource in self.resources():
                    row[f"utilisation_{resource}"] = agg.resources[resource]["utilisation"].mean
                for resource in self.resources():
                    row[f"waiting_{resource}"] = self.waiting[i].get(resource) if self.waiting else None
                row["bottleneck_candidate"] = self.candidates[i] if self.candidates else None
                rows.append(row)
        return rows

    def write_json(self, path: Path) -> None:
        """Every aggregate, as JSON, with each rate's near-saturation flag and warnings."""
        data = {"scenario": self.scenario, "scale": self.scale, "rates_per_min": self.rates_per_min,
                "near_saturation": self.near_saturation, "warnings": self.warnings}  # fmt: skip
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
    metric: str = "p95",
) -> SweepResult:
    """Run ``replications`` replications at each rate; ``request_type`` None scales the whole mix.

    Each rate's warnings (near saturation, against the scenario's no-load latencies; quantiles of ``metric`` from
    too few requests) and its waiting by resource are kept beside its aggregate.
    """
    from simfleet.producer.diagnostics import (
        bottleneck_candidate,
        no_load,
        sample_warnings,
        saturation,
        waiting_by_resource,
        wide_tails,
    )

    result = SweepResult(scenario.name, request_type or "mix", list(rates_per_min), [])
    for rate in rates_per_min:
        probe = scenario.with_rate(rate, request_type)
        summaries = evaluate(probe, replications, seed)
        agg = aggregate(summaries)
        result.aggregates.append(agg)
        alone = no_load(scenario, seed) if wide_tails(summaries) else None
        result.warnings.append([*saturation(summaries, alone), *sample_warnings([metric], summaries)])
        result.waiting.append(waiting_by_resource(agg, probe))
        result.candidates.append(bottleneck_candidate(result.waiting[-1], probe))
    return result


def sla_rows(result: SlaResult) -> list[dict[str, Any]]:
    """One row per probe of an SLA search, in the order they ran, with each term's mean and 95% half-width.

    A latency term's columns end in ``_s`` (seconds); a success-ratio term's have no unit; ``_op`` is ``<`` or ``>``.
    """
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
            unit = "" if outcome.term.floor else "_s"  # a success ratio's columns have no unit
            data = outcome.to_dict()
            row.update({f"{name}{unit}": data["mean"], f"{name}_ci95{unit}": data["ci95"],
                        f"{name}_threshold{unit}": outcome.term.threshold, f"{name}_op": outcome.term.op,
                        f"{name}_verdict": outcome.verdict, f"{name}_reason": outcome.reason})  # fmt: skip
        rows.append(row)
    return rows


def write_rows_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows with the same keys, as CSV with a header."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
