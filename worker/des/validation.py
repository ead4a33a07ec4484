"""The validation table of DES_MODEL.md: cases with a known answer from queueing theory or by construction.

Each case builds its scenario, runs it with fixed seeds, and compares one measured figure with theory. ``scale``
shrinks the simulated horizon of the statistical cases (the test suite runs them at a smaller scale than the
``simfleet des validate`` command); the exact cases do not depend on it. Statistical cases use several independent
replications and compare their mean with theory, so the verdict is deterministic for a given scale.

The rows run on the engine ``run_validation`` is given (the compiled kernel by default); the row that watches each
request with an observer runs on the Python engine, the only one that has observers. The model v2 rows are in
:mod:`simfleet.worker.des.validation_v2`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.shared.messages.study import DEFAULT_ENGINE, Engine
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import parse_scenario
from simfleet.worker.des.validation_base import (
    ENGINE,
    CaseResult,
    exact,
    figure,
    mean_over,
    relative,
    replicate,
    single_resource,
)
from simfleet.worker.des.validation_v2 import (
    _accounting,
    _arrival_rates,
    _branch_ps,
    _constructed_v2,
    _priority_fifo,
    _retry_ps,
    accounting_scenario,
    cobham_latency,
)


def _mm1_ps(rho: float, tolerance: float, scale: float) -> list[CaseResult]:
    horizon = 250_000.0 * scale if rho > 0.6 else 100_000.0 * scale
    scenario = single_resource(rho, {"dist": "exponential", "mean": 1.0}, horizon, warmup_s=horizon * 0.02)
    mean, runs = mean_over(scenario, 4)
    results = [relative(f"M/M/1-PS rho={rho}: mean latency", 1.0 / (1.0 - rho), mean, tolerance)]
    if rho > 0.6:
        little = runs[0].little
        results.append(
            relative(
                "Little's law L = lambda W (M/M/1-PS rho=0.8)",
                little.lambda_w,
                little.mean_in_system,
                0.01,
                f"lambda={little.arrival_rate_per_s:.4f}/s W={little.mean_latency_s:.4f}s",
            )
        )
    return results


def _insensitivity(scale: float) -> list[CaseResult]:
    horizon = 100_000.0 * scale
    results = []
    for label, work in (
        ("deterministic", 1.0),
        ("lognormal cv=2", {"dist": "lognormal", "mean": 1.0, "cv": 2.0}),
    ):
        mean, _ = mean_over(single_resource(0.5, work, horizon, warmup_s=horizon * 0.02), 4)
        results.append(relative(f"M/G/1-PS rho=0.5, {label} work: mean latency", 2.0, mean, 0.03))
    return results


def _conditional(scale: float) -> list[CaseResult]:
    rho = 0.5
    horizon = 100_000.0 * scale
    buckets = [(0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)]
    sums = [[0.0, 0.0, 0] for _ in buckets]

    def observe(_: str, arrival: float, finish: float, works: list[float]) -> None:
        size = works[0]
        for (low, high), acc in zip(buckets, sums, strict=True):
            if low <= size < high:
                acc[0] += finish - arrival
                acc[1] += size
                acc[2] += 1

    scenario = single_resource(rho, {"dist": "exponential", "mean": 1.0}, horizon, warmup_s=horizon * 0.02)
    for replication in range(4):
        Simulation(scenario, 2026, replication, observer=observe).run()  # observers are the Python engine's
    theory = 1.0 / (1.0 - rho)
    ratios = [latency / size for latency, size, _ in sums]
    worst = max(range(len(buckets)), key=lambda i: abs(ratios[i] - theory))
    detail = ", ".join(
        f"s in [{lo:g},{hi:g}): {r:.3f} (n={n})" for (lo, hi), r, (_, _, n) in zip(buckets, ratios, sums, strict=True)
    )
    return [relative("M/M/1-PS rho=0.5: E[T | s] / s per size bucket (worst)", theory, ratios[worst], 0.05, detail)]


def _fifo(scale: float) -> list[CaseResult]:
    lam = 0.7
    horizon = 400_000.0 * scale
    scenario = single_resource(
        lam, {"dist": "exponential", "mean": 1.0}, horizon, {"max_active": 1}, warmup_s=horizon * 0.02
    )
    mean, runs = mean_over(scenario, 4)
    p95 = sum(figure(r.overall.p95_s) for r in runs) / len(runs)
    return [
        relative("FIFO M/M/1 rho=0.7: mean latency", 1.0 / (1.0 - lam), mean, 0.03),
        relative("FIFO M/M/1 rho=0.7: p95 latency", math.log(20.0) / (1.0 - lam), p95, 0.03),
    ]


def erlang_c_mean(servers: int, lam: float, mu: float) -> float:
    """Mean time in system of M/M/c (Erlang C waiting plus service)."""
    a = lam / mu
    tail = a**servers / math.factorial(servers) * servers / (servers - a)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(servers)) + tail)
    return p_wait / (servers * mu - lam) + 1.0 / mu


def _mmc(scale: float) -> list[CaseResult]:
    servers, lam = 4, 2.8
    horizon = 60_000.0 * scale
    scenario = single_resource(
        lam,
        {"dist": "exponential", "mean": 1.0},
        horizon,
        {"capacity": float(servers), "per_tool_cap": 1.0, "max_active": servers},
        warmup_s=horizon * 0.02,
    )
    mean, _ = mean_over(scenario, 4)
    return [relative("M/M/4 via per_tool_cap and max_active, rho=0.7: mean", erlang_c_mean(4, lam, 1.0), mean, 0.03)]


def _tandem(scale: float) -> list[CaseResult]:
    horizon = 100_000.0 * scale
    scenario = parse_scenario(
        {
            "name": "tandem",
            "horizon_s": horizon,
            "warmup_s": horizon * 0.02,
            "resources": {"first": {"capacity": 1.0}, "second": {"capacity": 1.0}},
            "tools": {
                "a": {"work": {"first": {"dist": "exponential", "mean": 1.0}}},
                "b": {"work": {"second": {"dist": "exponential", "mean": 1.2}}},
            },
            "request_types": {
                "r": {"rate_per_min": 30.0, "nodes": {"a": {"tool": "a"}, "b": {"tool": "b", "after": ["a"]}}}
            },
        },
        source="<validation>",
    )
    mean, _ = mean_over(scenario, 4)
    theory = 1.0 / (1.0 - 0.5) + 1.2 / (1.0 - 0.6)
    return [relative("tandem A->B, PS rho=0.5 then 0.6: mean latency", theory, mean, 0.03)]


def _one_request(resources: dict[str, Any], tools: dict[str, Any], nodes: dict[str, Any]) -> ReplicationSummary:
    """Run a scenario with exactly one request, arriving at t = 100 s, and return its summary."""
    scenario = parse_scenario(
        {
            "name": "one-request",
            "horizon_s": 150.0,
            "resources": resources,
            "tools": tools,
            "request_types": {"r": {"rate_per_min": 0.6, "arrival": "deterministic", "nodes": nodes}},
        },
        source="<validation>",
    )
    return replicate(scenario, 0, 0)


def _constructed() -> list[CaseResult]:
    results = []
    single = _one_request({"cpu": {"capacity": 2.0}}, {"t": {"work": {"cpu": 3.0}}}, {"a": {"tool": "t"}})
    results.append(exact("1 request, 1 tool, 1 resource: work / capacity", 1.5, figure(single.overall.max_s), 1e-9))
    twins = _one_request(
        {"cpu": {"capacity": 2.0}}, {"t": {"work": {"cpu": 3.0}}}, {"a": {"tool": "t"}, "b": {"tool": "t"}}
    )
    results.append(
        exact("two identical tools on one resource: both end at 2w/C", 3.0, figure(twins.overall.max_s), 1e-9)
    )
    join = _one_request(
        {"x": {"capacity": 1.0}, "y": {"capacity": 1.0}, "z": {"capacity": 1.0}},
        {"a": {"work": {"x": 1.0}}, "b": {"work": {"y": 3.0}}, "c": {"work": {"z": 2.0}}},
        {"a": {"tool": "a"}, "b": {"tool": "b"}, "c": {"tool": "c", "after": ["a", "b"]}},
    )
    results.append(
        exact("A -> C <- B: C starts at max(finish A, finish B) = 3, ends at 5", 5.0, figure(join.overall.max_s), 0.0)
    )
    chain_nodes = {f"n{i:02d}": {"tool": "t", **({"after": [f"n{i - 1:02d}"]} if i else {})} for i in range(50)}
    chain = _one_request({"cpu": {"capacity": 1.0}}, {"t": {"work": {"cpu": 1.0}}}, chain_nodes)
    results.append(exact("50-tool chain: latency 50", 50.0, figure(chain.overall.max_s), 1e-9))
    results.append(exact("50-tool chain: events (warmup, arrival, 50 completions, horizon)", 53, chain.events, 0))
    width = 1200
    wide = _one_request(
        {"cpu": {"capacity": 10_000.0}},
        {f"t{i}": {"work": {"cpu": float(i + 1)}} for i in range(width)},
        {f"n{i}": {"tool": f"t{i}"} for i in range(width)},
    )
    total = width * (width + 1) / 2 / 10_000.0
    results.append(
        exact(
            f"{width} concurrently active tools: last ends at total work / C",
            total,
            figure(wide.overall.max_s),
            1e-9 * total,
            f"max consumers {wide.resources['cpu'].max_busy}",
        )
    )
    results.append(exact(f"{width} concurrently active tools: events", width + 3, wide.events, 0))
    return results


CASES: list[tuple[str, Callable[[float], list[CaseResult]]]] = [
    ("mm1-ps-0.5", lambda scale: _mm1_ps(0.5, 0.03, scale)),
    ("mm1-ps-0.8", lambda scale: _mm1_ps(0.8, 0.05, scale)),
    ("mg1-ps-insensitivity", _insensitivity),
    ("mm1-ps-conditional", _conditional),
    ("fifo-mm1", _fifo),
    ("mmc", _mmc),
    ("tandem", _tandem),
    ("constructed", lambda scale: _constructed()),
    ("retry-ps", _retry_ps),
    ("priority-mm1", _priority_fifo),
    ("constructed-v2", lambda scale: _constructed_v2()),
    ("accounting", _accounting),
    ("branch-ps", _branch_ps),
    ("arrival-rates", _arrival_rates),
]


def run_validation(scale: float = 1.0, only: list[str] | None = None,
                   engine: Engine = DEFAULT_ENGINE) -> list[CaseResult]:  # fmt: skip
    """Run every validation case (or those named in ``only``) on ``engine`` and return their rows."""
    results: list[CaseResult] = []
    token = ENGINE.set(engine)
    try:
        for name, case in CASES:
            if only is None or name in only:
                results.extend(case(scale))
    finally:
        ENGINE.reset(token)
    return results


__all__ = ["CASES", "CaseResult", "accounting_scenario", "cobham_latency", "erlang_c_mean", "run_validation"]
