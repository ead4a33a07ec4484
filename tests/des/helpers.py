"""Small scenario builders shared by the DES tests."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des.scenario import Scenario, parse_scenario


def one_queue(rate_per_min: float, work: Any, horizon_s: float = 5_000.0, **resource: Any) -> Scenario:
    """One request type with one tool on one rate resource of capacity 1 (unless overridden)."""
    return parse_scenario(
        {
            "name": "one-queue",
            "horizon_s": horizon_s,
            "resources": {"cpu": {"capacity": 1.0, **resource}},
            "tools": {"job": {"work": {"cpu": work}}},
            "request_types": {"r": {"rate_per_min": rate_per_min, "nodes": {"job": {"tool": "job"}}}},
        }
    )


def fork_join(horizon_s: float = 3_000.0, **overrides: Any) -> Scenario:
    """Two types sharing cpu/network, a space resource, weights, a cap and a FIFO limit: every engine path."""
    data: dict[str, Any] = {
        "name": "fork-join",
        "horizon_s": horizon_s,
        "warmup_s": 100.0,
        "resources": {
            "cpu": {"capacity": 2.0, "max_active": 3, "per_tool_cap": 1.0},
            "net": {"capacity": 1.0},
            "mem": {"kind": "space", "capacity": 4},
        },
        "tools": {
            "a": {
                "work": {
                    "cpu": {"dist": "exponential", "mean": 0.5},
                    "net": {"dist": "lognormal", "mean": 0.2, "cv": 1},
                },
                "space": {"mem": 1},
            },
            "b": {"work": {"cpu": 0.3, "net": {"dist": "uniform", "low": 0.1, "high": 0.3}}},
            "c": {"work": {"net": {"dist": "empirical", "values": [0.1, 0.2, 0.4]}}},
        },
        "request_types": {
            "r": {
                "rate_per_min": 60,
                "nodes": {
                    "a": {"tool": "a"},
                    "b": {"tool": "b", "after": ["a"]},
                    "c": {"tool": "a", "after": ["a"]},
                    "d": {"tool": "c", "after": ["b", "c"]},
                },
            },
            "q": {"rate_per_min": 30, "weight": 2, "arrival": "deterministic", "nodes": {"x": {"tool": "b"}}},
        },
    }
    data.update(overrides)
    return parse_scenario(data)


def without_wall_clock(summary: ReplicationSummary) -> ReplicationSummary:
    """A summary with the two fields that depend on the machine's speed set to zero."""
    return msgspec.structs.replace(summary, wall_s=0.0, events_per_s=0.0)


def faulty(horizon_s: float = 2_000.0, **overrides: Any) -> Scenario:
    """Every feature of model v2 at once: failures, timeouts, retries with backoff, skip, fallback, priorities at a
    FIFO limit and a space resource, a probabilistic node, variants, attributes scaling work, a join overhead, and a
    bursty (MMPP) arrival process beside a Poisson one."""
    data: dict[str, Any] = {
        "name": "faulty",
        "horizon_s": horizon_s,
        "warmup_s": 100.0,
        "resources": {
            "cpu": {"capacity": 2.0, "max_active": 2, "per_tool_cap": 1.0, "join_overhead": 0.01},
            "net": {"capacity": 1.0},
            "mem": {"kind": "space", "capacity": 3},
        },
        "tools": {
            "fetch": {
                "work": {"net": {"per": "size", "amount": {"dist": "exponential", "mean": 0.1}}},
                "timeout_s": 1.5, "retries": 2, "backoff_s": {"base_s": 0.2, "factor": 2.0, "max_s": 0.5},
                "on_failure": {"fallback": "cache"},
            },
            "cache": {"work": {"cpu": 0.05}, "fail_prob": 0.1, "on_failure": "skip"},
            "think": {"work": {"cpu": {"dist": "exponential", "mean": 0.4}}, "space": {"mem": 1},
                      "fail_prob": 0.15, "retries": 1},
            "write": {"work": {"cpu": 0.1, "net": {"dist": "uniform", "low": 0.05, "high": 0.15}},
                      "timeout_s": 0.8},
        },
        "request_types": {
            "chat": {
                "rate_per_min": 40, "priority": 1,
                "attributes": {"size": {"dist": "lognormal", "mean": 2.0, "cv": 1.0}},
                "nodes": {
                    "fetch": {"tool": "fetch", "prob": 0.7},
                    "think": {"tool": "think", "after": ["fetch"]},
                    "write": {"tool": "write", "after": ["think"], "retries": 1},
                },
            },
            "batch": {
                "arrival": {"process": "mmpp", "rates_per_min": [20, 80], "mean_sojourn_s": [60, 20]},
                "weight": 2.0,
                "attributes": {"size": {"dist": "exponential", "mean": 1.0}},
                "variants": {
                    "short": {"weight": 3, "nodes": {"think": {"tool": "think"}}},
                    "long": {"weight": 1, "nodes": {
                        "fetch": {"tool": "fetch"},
                        "think": {"tool": "think", "after": ["fetch"], "fail_prob": 0.3, "on_failure": "fail"},
                    }},
                },
            },
        },
    }  # fmt: skip
    data.update(overrides)
    return parse_scenario(data)


def plain(summary: ReplicationSummary) -> Any:
    """A summary as plain data, wall-clock figures left out: what two engines must agree on."""
    return msgspec.to_builtins(without_wall_clock(summary))


def differences(python: Any, compiled: Any, path: str = "") -> list[str]:
    """Where two plain summaries differ, field by field, each float with its relative difference."""
    if isinstance(python, dict) and isinstance(compiled, dict):
        keys = sorted(set(python) | set(compiled))
        return [d for k in keys for d in differences(python.get(k), compiled.get(k), f"{path}.{k}")]
    if isinstance(python, list) and isinstance(compiled, list) and len(python) == len(compiled):
        pairs = enumerate(zip(python, compiled, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{path}[{i}]")]
    both_nan = isinstance(python, float) and isinstance(compiled, float) and math.isnan(python) and math.isnan(compiled)
    if python == compiled or both_nan:
        return []
    if isinstance(python, float) and isinstance(compiled, float):
        relative = abs(python - compiled) / max(abs(python), 1e-300)
        return [f"{path}: {python!r} vs {compiled!r} (relative {relative:.3g})"]
    return [f"{path}: {python!r} vs {compiled!r}"]


def assert_same_run(scenario: Scenario, seed: int, replication: int) -> Any:
    """Run the replication on both engines, fail on the fields that differ; the summary as plain data."""
    from simfleet.worker.des.compiled import CompiledSimulation
    from simfleet.worker.des.engine import Simulation

    python = Simulation(scenario, seed, replication)
    python.run()
    compiled = CompiledSimulation(scenario, seed, replication)
    compiled.run()
    expected, got = plain(python.summary()), plain(compiled.summary())
    found = differences(expected, got)
    assert not found, f"{scenario.name}, seed {seed}, replication {replication}:\n" + "\n".join(found[:20])
    assert compiled.events == python.events
    return got
