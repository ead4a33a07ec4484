"""Aggregation of replications: the study-level answer.

For every scalar figure of the replication summaries (latency figures per type and overall, resource figures,
Little's law figures, event counts) the aggregate gives the mean, the standard deviation, the 95% Student-t
confidence half-width and the number of replications that had a value (a :class:`Stat`). Quantiles are given twice:
from the merged sketches (as if all replications were one run) and as the mean of the per-replication quantiles
(with its CI). Summaries are sorted by replication index first, so any arrival order of the results gives the same
aggregate, to the last bit; this is what lets the fleet's chord callback and the local runner agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import msgspec
from scipy import stats

from simfleet.shared.messages.des import (
    FINISHED_FIGURES,
    NODE_FIGURES,
    FinishedFigures,
    LatencyAggregate,
    LatencyFigures,
    LittleAggregate,
    MergedLatency,
    ReplicationSummary,
    ResourceFigures,
    RunAggregate,
    Stat,
    StudyAggregate,
)
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.summary import QUANTILES


def scalar_stats(values: Iterable[float | None]) -> Stat:
    """Mean, sample standard deviation, 95% Student-t half-width and count of the non-missing values."""
    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(present)
    if n == 0:
        return Stat(mean=None, std=None, ci95=None, n=0)
    mean = math.fsum(present) / n
    if n == 1:
        return Stat(mean=mean, std=None, ci95=None, n=1)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in present) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Stat(mean=mean, std=std, ci95=half, n=n)


def _latency_block(items: Sequence[LatencyFigures]) -> LatencyAggregate:
    merged = LatencySketch()
    for item in items:
        merged.merge(LatencySketch.from_data(item.sketch))
    empty = merged.count == 0
    return LatencyAggregate(
        arrived=scalar_stats(i.arrived for i in items),
        completed=scalar_stats(i.completed for i in items),
        unfinished=scalar_stats(i.unfinished for i in items),
        mean_s=scalar_stats(i.mean_s for i in items),
        p50_s=scalar_stats(i.p50_s for i in items),
        p95_s=scalar_stats(i.p95_s for i in items),
        p99_s=scalar_stats(i.p99_s for i in items),
        max_s=scalar_stats(i.max_s for i in items),
        throughput_per_min=scalar_stats(i.throughput_per_min for i in items),
        merged=MergedLatency(
            completed=merged.count,
            mean_s=None if empty else merged.mean,
            p50_s=None if empty else merged.quantile(QUANTILES["p50_s"]),
            p95_s=None if empty else merged.quantile(QUANTILES["p95_s"]),
            p99_s=None if empty else merged.quantile(QUANTILES["p99_s"]),
            max_s=None if empty else merged.max,
        ),
        sketch=merged.to_data(),
        failed=scalar_stats(i.failed for i in items),
        timed_out=scalar_stats(i.timed_out for i in items),
        success_ratio=scalar_stats(i.success_ratio for i in items),
        goodput_per_min=scalar_stats(i.goodput_per_min for i in items),
        all_finished=_finished_block([i.all_finished for i in items]),
    )


def _finished_block(items: Sequence[FinishedFigures | None]) -> dict[str, Stat]:
    """Each figure over every finished request, over the replications (empty when no replication had them)."""
    present = [i for i in items if i is not None]
    if not present:
        return {}
    return {name: scalar_stats(getattr(i, name) for i in present) for name in FINISHED_FIGURES}


def _node_block(runs: Sequence[ReplicationSummary]) -> dict[str, dict[str, dict[str, Stat]]]:
    """Per type and node, each node figure and the attempts per counted arrival, over the replications."""
    block: dict[str, dict[str, dict[str, Stat]]] = {}
    for type_name, nodes in runs[0].nodes.items():
        block[type_name] = {}
        for node in nodes:
            figures = [r.nodes[type_name][node] for r in runs]
            stats = {name: scalar_stats(getattr(f, name) for f in figures) for name in NODE_FIGURES}
            stats["attempts_per_request"] = scalar_stats(
                f.attempts / r.types[type_name].arrived if r.types[type_name].arrived else None
                for f, r in zip(figures, runs, strict=True)
            )
            block[type_name][node] = stats
    return block


def _resource_block(items: Sequence[ResourceFigures]) -> dict[str, Stat]:
    """Every figure of the first replication's resource (its kind's fields, in order), over the replications."""
    names = [f.name for f in msgspec.structs.fields(items[0])]
    return {name: scalar_stats(getattr(item, name) for item in items) for name in names}


def aggregate(summaries: Iterable[ReplicationSummary]) -> StudyAggregate:
    """Combine replication summaries of one scenario into the study answer."""
    runs = sorted(summaries, key=lambda s: s.replication)
    if not runs:
        raise ValueError("no replication summaries to aggregate")
    first = runs[0]
    little = [r.little for r in runs]
    return StudyAggregate(
        scenario=first.scenario,
        seed=first.seed,
        replications=len(runs),
        stable=all(r.stable for r in runs),
        unstable_replications=sum(1 for r in runs if not r.stable),
        unstable_reasons=sorted({r.unstable_reason for r in runs if r.unstable_reason}),
        types={name: _latency_block([r.types[name] for r in runs]) for name in first.types},
        overall=_latency_block([r.overall for r in runs]),
        resources={name: _resource_block([r.resources[name] for r in runs]) for name in first.resources},
        little=LittleAggregate(
            mean_in_system=scalar_stats(x.mean_in_system for x in little),
            arrival_rate_per_s=scalar_stats(x.arrival_rate_per_s for x in little),
            mean_latency_s=scalar_stats(x.mean_latency_s for x in little),
            lambda_w=scalar_stats(x.lambda_w for x in little),
        ),
        run=RunAggregate(
            events=scalar_stats(r.events for r in runs),
            wall_s=scalar_stats(r.wall_s for r in runs),
            events_per_s=scalar_stats(r.events_per_s for r in runs),
            in_flight=scalar_stats(r.in_flight for r in runs),
            end_time_s=scalar_stats(r.end_time_s for r in runs),
        ),
        nodes=_node_block(runs),
    )
