"""The figures of one replication, as plain data (a dict that msgpack and JSON both carry).

Layout::

    scenario, seed, replication, stable, unstable_reason, stopped_at_horizon, in_flight, end_time_s, window_s,
    types:     {name: latency figures}        overall: latency figures over every type
    resources: {name: utilisation and queue figures}
    little:    {mean_in_system, arrival_rate_per_s, mean_latency_s, lambda_w}
    events, wall_s, events_per_s

Latency figures: ``arrived`` (counted arrivals), ``completed``, ``unfinished`` (in flight when the run stopped, counted
or not), ``mean_s``, ``p50_s``, ``p95_s``, ``p99_s``, ``max_s`` (``None`` when nothing completed),
``throughput_per_min`` (counted completions per minute of the measurement window) and ``sketch`` (the mergeable
DDSketch). Only requests arriving in [warmup, horizon) are counted. ``wall_s`` and ``events_per_s`` are the only
fields that are not a pure function of (scenario, seed, replication).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simfleet.worker.des.sketch import LatencySketch

if TYPE_CHECKING:
    from simfleet.worker.des.engine import Simulation

QUANTILES = {"p50_s": 0.50, "p95_s": 0.95, "p99_s": 0.99}


def latency_figures(sketch: LatencySketch, *, arrived: int, unfinished: int, window_s: float) -> dict[str, Any]:
    """Latency figures of one request type (or of all) from its sketch."""
    empty = sketch.count == 0
    figures: dict[str, Any] = {
        "arrived": arrived,
        "completed": sketch.count,
        "unfinished": unfinished,
        "mean_s": None if empty else sketch.mean,
    }
    for name, q in QUANTILES.items():
        figures[name] = None if empty else sketch.quantile(q)
    figures["max_s"] = None if empty else sketch.max
    figures["throughput_per_min"] = sketch.count / window_s * 60.0 if window_s > 0 else 0.0
    figures["sketch"] = sketch.to_dict()
    return figures


def build_summary(sim: Simulation) -> dict[str, Any]:
    """Summarise a finished (or paused) simulation."""
    if "end" not in sim.window:
        sim._close_window(sim.now)
    start, end = sim.window["start"], sim.window["end"]
    window_s = end["t"] - start["t"]
    span = window_s if window_s > 0 else float("nan")
    types: dict[str, Any] = {}
    overall = LatencySketch()
    for rtype, sketch in zip(sim.types, sim.sketches, strict=True):
        overall.merge(sketch)
        types[rtype.name] = latency_figures(
            sketch,
            arrived=sim.counted_arrivals[rtype.index],
            unfinished=sim.inflight[rtype.index],
            window_s=window_s,
        )
    resources: dict[str, Any] = {}
    for rate, (b0, n0, q0), (b1, n1, q1) in zip(sim.rates, start["rates"], end["rates"], strict=True):
        resources[rate.name] = {
            "kind": "rate",
            "capacity": rate.capacity,
            "offered_load": sim.offered_load[rate.name],
            "utilisation": (b1 - b0) / (rate.capacity * span),
            "mean_consumers": (n1 - n0) / span,
            "max_consumers": rate.max_n,
            "mean_waiting": (q1 - q0) / span,
            "max_waiting": rate.max_q,
        }
    for space, (u0, _, q0), (u1, _, q1) in zip(sim.spaces, start["spaces"], end["spaces"], strict=True):
        resources[space.name] = {
            "kind": "space",
            "capacity": space.capacity,
            "utilisation": (u1 - u0) / (space.capacity * span),
            "mean_in_use": (u1 - u0) / span,
            "max_in_use": space.max_used,
            "mean_waiting": (q1 - q0) / span,
            "max_waiting": space.max_q,
        }
    arrivals = sum(sim.counted_arrivals)
    mean_in_system = (end["sys"] - start["sys"]) / span
    arrival_rate = arrivals / span
    mean_latency = overall.mean if overall.count else float("nan")
    return {
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "replication": sim.replication,
        "stable": sim.unstable_reason is None,
        "unstable_reason": sim.unstable_reason,
        "stopped_at_horizon": sim.stopped_at_horizon,
        "in_flight": sim.n_sys,
        "end_time_s": sim.now,
        "window_s": window_s,
        "types": types,
        "overall": latency_figures(overall, arrived=arrivals, unfinished=sim.n_sys, window_s=window_s),
        "resources": resources,
        "little": {
            "mean_in_system": mean_in_system,
            "arrival_rate_per_s": arrival_rate,
            "mean_latency_s": mean_latency,
            "lambda_w": arrival_rate * mean_latency,
        },
        "events": sim.events,
        "wall_s": sim.wall_s,
        "events_per_s": sim.events / sim.wall_s if sim.wall_s > 0 else 0.0,
    }
