"""The figures of one replication, as a :class:`~simfleet.shared.messages.des.ReplicationSummary`.

The summary holds, for the measurement window [warmup, end]: latency figures per request type and over every type
(:class:`~simfleet.shared.messages.des.LatencyFigures`, with the mergeable DDSketch), utilisation and queue figures
per resource, Little's law figures, and the run's event count and speed. Only requests arriving in
[warmup, horizon) are counted. ``wall_s`` and ``events_per_s`` are the only fields that are not a pure function of
(scenario, seed, replication). The message module documents every field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simfleet.shared.messages.des import (
    NODE_FIGURES,
    FinishedFigures,
    LatencyFigures,
    LittleFigures,
    NodeFigures,
    RateResourceFigures,
    ReplicationSummary,
    ResourceFigures,
    SpaceResourceFigures,
)
from simfleet.worker.des.sketch import LatencySketch

if TYPE_CHECKING:
    from simfleet.worker.des.engine import Simulation

QUANTILES = {"p50_s": 0.50, "p95_s": 0.95, "p99_s": 0.99}
"""The latency quantiles reported, by figure name."""


def finished_figures(sketch: LatencySketch) -> FinishedFigures:
    """Figures over every finished request, from the merged sketch of the successful and the failed ones."""
    empty = sketch.count == 0
    return FinishedFigures(
        finished=sketch.count,
        mean_s=None if empty else sketch.mean,
        p50_s=None if empty else sketch.quantile(QUANTILES["p50_s"]),
        p95_s=None if empty else sketch.quantile(QUANTILES["p95_s"]),
        p99_s=None if empty else sketch.quantile(QUANTILES["p99_s"]),
        max_s=None if empty else sketch.max,
    )


def latency_figures(
    sketch: LatencySketch,
    *,
    arrived: int,
    unfinished: int,
    window_s: float,
    failed: int = 0,
    timed_out: int = 0,
    failures: LatencySketch | None = None,
) -> LatencyFigures:
    """Latency figures of one request type (or of all) from its sketch.

    ``failures`` is the sketch of its failed requests, given when the scenario can fail.
    """
    empty = sketch.count == 0
    finished = sketch.count + failed + timed_out
    goodput = sketch.count / window_s * 60.0 if window_s > 0 else 0.0
    all_finished = None
    if failures is not None:
        merged = LatencySketch()
        merged.merge(sketch)
        merged.merge(failures)
        all_finished = finished_figures(merged)
    return LatencyFigures(
        arrived=arrived,
        completed=sketch.count,
        unfinished=unfinished,
        mean_s=None if empty else sketch.mean,
        p50_s=None if empty else sketch.quantile(QUANTILES["p50_s"]),
        p95_s=None if empty else sketch.quantile(QUANTILES["p95_s"]),
        p99_s=None if empty else sketch.quantile(QUANTILES["p99_s"]),
        max_s=None if empty else sketch.max,
        throughput_per_min=goodput,
        sketch=sketch.to_data(),
        failed=failed,
        timed_out=timed_out,
        success_ratio=sketch.count / finished if finished else None,
        goodput_per_min=goodput,
        all_finished=all_finished,
    )


def build_summary(sim: Simulation) -> ReplicationSummary:
    """Summarise a finished (or paused) simulation."""
    if "end" not in sim.window:
        sim._close_window(sim.now)
    start, end = sim.window["start"], sim.window["end"]
    window_s = end["t"] - start["t"]
    span = window_s if window_s > 0 else float("nan")
    types: dict[str, LatencyFigures] = {}
    overall = LatencySketch()
    overall_failures = LatencySketch()
    fallible = sim.fallible
    for rtype, sketch, failures in zip(sim.types, sim.sketches, sim.fail_sketches, strict=True):
        overall.merge(sketch)
        overall_failures.merge(failures)
        failed, timed_out = sim.outcomes[rtype.index]
        types[rtype.name] = latency_figures(
            sketch,
            arrived=sim.counted_arrivals[rtype.index],
            unfinished=sim.counted_inflight[rtype.index],
            window_s=window_s,
            failed=failed,
            timed_out=timed_out,
            failures=failures if fallible else None,
        )
    resources: dict[str, ResourceFigures] = {}
    for rate, (b0, n0, q0, w0), (b1, n1, q1, w1) in zip(sim.rates, start["rates"], end["rates"], strict=True):
        resources[rate.name] = RateResourceFigures(
            capacity=rate.capacity,
            offered_load=sim.offered_load[rate.name],
            utilisation=(b1 - b0) / (rate.capacity * span),
            mean_consumers=(n1 - n0) / span,
            max_consumers=rate.max_n,
            mean_waiting=(q1 - q0) / span,
            max_waiting=rate.max_q,
            wasted_work_per_s=(w1 - w0) / span,
        )
    for space, (u0, _, q0), (u1, _, q1) in zip(sim.spaces, start["spaces"], end["spaces"], strict=True):
        resources[space.name] = SpaceResourceFigures(
            capacity=space.capacity,
            utilisation=(u1 - u0) / (space.capacity * span),
            mean_in_use=(u1 - u0) / span,
            max_in_use=space.max_used,
            mean_waiting=(q1 - q0) / span,
            max_waiting=space.max_q,
        )
    arrivals = sum(sim.counted_arrivals)
    mean_in_system = (end["sys"] - start["sys"]) / span
    arrival_rate = arrivals / span
    # Little's law holds for every request that passes through, failed ones included: W is over all finished ones.
    finished = LatencySketch()
    finished.merge(overall)
    finished.merge(overall_failures)
    mean_latency = finished.mean if finished.count else float("nan")
    return ReplicationSummary(
        scenario=sim.scenario.name,
        seed=sim.seed,
        replication=sim.replication,
        stable=sim.unstable_reason is None,
        unstable_reason=sim.unstable_reason,
        stopped_at_horizon=sim.stopped_at_horizon,
        in_flight=sim.n_sys,
        in_system_at_window_end=int(end.get("n", sim.n_sys)),
        end_time_s=sim.now,
        window_s=window_s,
        types=types,
        overall=latency_figures(
            overall,
            arrived=arrivals,
            unfinished=sum(sim.counted_inflight),
            window_s=window_s,
            failed=sum(o[0] for o in sim.outcomes),
            timed_out=sum(o[1] for o in sim.outcomes),
            failures=overall_failures if fallible else None,
        ),
        resources=resources,
        little=LittleFigures(
            mean_in_system=mean_in_system,
            arrival_rate_per_s=arrival_rate,
            mean_latency_s=mean_latency,
            lambda_w=arrival_rate * mean_latency,
        ),
        events=sim.events,
        wall_s=sim.wall_s,
        events_per_s=sim.events / sim.wall_s if sim.wall_s > 0 else 0.0,
        nodes={
            rtype.name: {
                key: NodeFigures(**dict(zip(NODE_FIGURES, counts, strict=True)))
                for key, counts in zip(rtype.node_keys, sim.node_stats[rtype.index], strict=True)
            }
            for rtype in sim.types
        },
    )
