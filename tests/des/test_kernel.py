"""The compiled event loop gives the Python engine's summaries bit for bit on model v1 scenarios, and refuses the
scenarios whose features it does not cover yet."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfleet.shared.errors import ScenarioError, SimulationError
from simfleet.worker.des.compiled import CompiledSimulation
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario, load_scenario, parse_scenario

from .helpers import faulty, fork_join, one_queue, without_wall_clock

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
V1_EXAMPLES = ["deep_research_sla", "mixed_workload", "npu_bottleneck", "web_search_load_test"]


def plain(summary: Any) -> Any:
    return msgspec.to_builtins(without_wall_clock(summary))


def differences(python: Any, compiled: Any, path: str = "") -> list[str]:
    """Where two summaries differ, each float with its relative difference."""
    if isinstance(python, dict) and isinstance(compiled, dict):
        keys = sorted(set(python) | set(compiled))
        return [d for k in keys for d in differences(python.get(k), compiled.get(k), f"{path}.{k}")]
    if isinstance(python, list) and isinstance(compiled, list) and len(python) == len(compiled):
        pairs = enumerate(zip(python, compiled, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{path}[{i}]")]
    if python == compiled or (isinstance(python, float) and isinstance(compiled, float) and math.isnan(python)
                              and math.isnan(compiled)):  # fmt: skip
        return []
    if isinstance(python, float) and isinstance(compiled, float):
        relative = abs(python - compiled) / max(abs(python), 1e-300)
        return [f"{path}: {python!r} vs {compiled!r} (relative {relative:.3g})"]
    return [f"{path}: {python!r} vs {compiled!r}"]


def assert_same_run(scenario: Scenario, seed: int, replication: int) -> Any:
    python = Simulation(scenario, seed, replication)
    python.run()
    compiled = CompiledSimulation(scenario, seed, replication)
    compiled.run()
    expected, got = plain(python.summary()), plain(compiled.summary())
    assert not differences(expected, got), "\n".join(differences(expected, got)[:20])
    assert compiled.events == python.events
    return got


@pytest.mark.parametrize("seed, replication", [(1, 0), (1, 1), (7, 3)])
@pytest.mark.parametrize(
    "make",
    [
        lambda: one_queue(48, {"dist": "exponential", "mean": 1}, horizon_s=12_000),
        lambda: one_queue(90, {"dist": "lognormal", "mean": 1, "cv": 2}, capacity=2.0, per_tool_cap=0.7, max_active=3),
        lambda: fork_join(),
        lambda: fork_join(drain=False, warmup_s=0),
    ],
    ids=["mm1-ps", "capped-fifo", "fork-join", "fork-join-no-drain"],
)
def test_compiled_summary_equals_the_python_engines(make: Any, seed: int, replication: int) -> None:
    summary = assert_same_run(make(), seed, replication)
    assert summary["overall"]["completed"] > 100


@pytest.mark.parametrize("name", V1_EXAMPLES)
def test_example_scenarios_give_the_same_summary(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    for seed, replication in ((0, 0), (5, 2)):
        assert_same_run(scenario, seed, replication)


def test_a_run_in_slices_equals_the_python_engine_slice_by_slice() -> None:
    scenario = fork_join(horizon_s=1_500.0)
    python, compiled = Simulation(scenario, 3, 1), CompiledSimulation(scenario, 3, 1)
    for until_s in (0.5, 99.0, 100.0, 333.3, 1_200.0, 1_500.0, 1_700.0):
        assert compiled.run(until_s) == python.run(until_s)
        assert (compiled.now, compiled.events, compiled.next_event_s) == (
            python.now,
            python.events,
            python.next_event_s,
        )
    assert compiled.run() and python.run()
    assert plain(compiled.summary()) == plain(python.summary())


def test_a_run_saved_and_resumed_at_every_slice_equals_the_uninterrupted_one() -> None:
    scenario = fork_join(horizon_s=1_500.0)
    python = Simulation(scenario, 5, 2)
    python.run()
    compiled = CompiledSimulation(scenario, 5, 2)
    for until_s in (0.1, 100.0, 450.5, 1_000.0, 1_500.0, 1_600.0):
        compiled.run(until_s)
        state = msgpack.unpackb(msgpack.packb(compiled.state_dict()))
        compiled = CompiledSimulation.from_state(scenario, state)
    assert compiled.run()
    assert plain(compiled.summary()) == plain(python.summary())
    assert compiled.events == python.events


def test_a_paused_run_summarises_as_the_python_engine_does() -> None:
    scenario = one_queue(48, {"dist": "exponential", "mean": 1}, horizon_s=12_000)
    python, compiled = Simulation(scenario, 2), CompiledSimulation(scenario, 2)
    assert not python.run(5_000.0) and not compiled.run(5_000.0)
    assert plain(compiled.summary()) == plain(python.summary())


def test_simultaneous_completions_on_two_resources_are_taken_in_resource_order() -> None:
    # Both types arrive at the same instants and finish their first node at the same instant on r0 and r1; the
    # node whose completion is taken first gets the single slot of r2, and the other type waits 2 s more.
    tool = {"ta": {"work": {"r0": 1.0}}, "tb": {"work": {"r1": 1.0}}, "tc": {"work": {"r2": 0.25}}}
    scenario = parse_scenario({
        "name": "ties", "horizon_s": 200.0,
        "resources": {"r0": {"capacity": 1.0}, "r1": {"capacity": 1.0}, "r2": {"capacity": 1.0, "max_active": 1}},
        "tools": tool,
        "request_types": {
            "x": {"rate_per_min": 12, "arrival": "deterministic",
                  "nodes": {"a": {"tool": "ta"}, "c": {"tool": "tc", "after": ["a"]}}},
            "y": {"rate_per_min": 12, "arrival": "deterministic",
                  "nodes": {"b": {"tool": "tb"}, "c": {"tool": "tc", "after": ["b"]}}},
        },
    })  # fmt: skip
    summary = assert_same_run(scenario, 1, 0)
    assert summary["types"]["x"]["mean_s"] == 1.25 and summary["types"]["y"]["mean_s"] == 1.5


def test_a_small_demand_waits_behind_a_large_one_on_a_space_resource() -> None:
    # Head-of-line admission: a newcomer that fits still waits while an earlier, larger demand is waiting.
    scenario = parse_scenario({
        "name": "head-of-line", "horizon_s": 2_000.0,
        "resources": {"cpu": {"capacity": 3.0}, "mem": {"kind": "space", "capacity": 2}},
        "tools": {"small": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}, "space": {"mem": 1}},
                  "big": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}, "space": {"mem": 1.5}}},
        "request_types": {"s": {"rate_per_min": 50, "nodes": {"n": {"tool": "small"}}},
                          "b": {"rate_per_min": 25, "nodes": {"n": {"tool": "big"}}}},
    })  # fmt: skip
    summary = assert_same_run(scenario, 2, 0)
    assert summary["resources"]["mem"]["max_waiting"] > 3


def test_the_in_flight_guard_stops_both_engines_alike() -> None:
    scenario = dataclasses.replace(one_queue(120, 1.0, horizon_s=2_000.0), max_in_flight=500)
    summary = assert_same_run(scenario, 1, 0)
    assert summary["unstable_reason"] == "more than 500 requests in flight"


def test_an_overloaded_system_grows_the_tables_and_stops_at_the_horizon() -> None:
    # Thousands of requests in flight: the request, tool and latency tables grow several times, and the work draws
    # are refilled far ahead of use; the offered load flags it unstable and the run stops at the horizon.
    scenario = fork_join(horizon_s=600.0, resources={
        "cpu": {"capacity": 0.5, "max_active": 3, "per_tool_cap": 1.0},
        "net": {"capacity": 0.3},
        "mem": {"kind": "space", "capacity": 2},
    })  # fmt: skip
    summary = assert_same_run(scenario, 4, 0)
    assert summary["in_flight"] > 300
    assert summary["stopped_at_horizon"] and summary["unstable_reason"].startswith("offered load reaches capacity")


def test_thousands_in_flight_grow_every_table_and_the_draws_ahead() -> None:
    # 10 requests a second on a server that finishes 1: over 4,000 in flight, past the first sizes of the request,
    # tool and latency tables and of the work draws kept ahead of use.
    scenario = one_queue(600, {"dist": "exponential", "mean": 1.0}, horizon_s=480.0)
    summary = assert_same_run(scenario, 6, 1)
    assert summary["in_flight"] > 4_100


def test_the_event_limit_is_enforced_as_in_the_engine() -> None:
    scenario = dataclasses.replace(one_queue(60, 0.5, horizon_s=1_000.0), max_events=500)
    with pytest.raises(SimulationError, match="max_events"):
        Simulation(scenario, 1).run()
    with pytest.raises(SimulationError, match="max_events: the replication reached its limit of 500 events"):
        CompiledSimulation(scenario, 1).run()


@pytest.mark.parametrize(
    "scenario, feature",
    [
        (lambda: faulty(), "failures or timeouts"),
        (lambda: load_scenario(SCENARIOS / "rag_with_failures.yaml"), "request_types.summarise.variants"),
        (
            lambda: fork_join(request_types={"r": {"rate_per_min": 6, "nodes": {"a": {"tool": "a", "prob": 0.5}}}}),
            "request_types.r.nodes.a.prob",
        ),
    ],
)
def test_a_model_v2_scenario_is_refused_with_what_is_missing(scenario: Any, feature: str) -> None:
    with pytest.raises(ScenarioError, match="compiled DES kernel does not cover") as raised:
        CompiledSimulation(scenario(), 1)
    assert feature in str(raised.value)


# ---------------------------------------------------------------------------------------------- random scenarios


@st.composite
def v1_scenarios(draw: Any) -> dict[str, Any]:
    """Random model v1 scenarios: up to three rate and two space resources, caps, FIFO limits, zero-work tools,
    random DAGs, weights and priorities, both arrival kinds, warmup, drain or not, and a small in-flight guard."""
    resources: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        rate: dict[str, Any] = {"capacity": draw(st.sampled_from([0.5, 1.0, 3.0]))}
        if draw(st.booleans()):
            rate["per_tool_cap"] = draw(st.sampled_from([0.25, 1.0]))
        if draw(st.booleans()):
            rate["max_active"] = draw(st.integers(1, 3))
        resources[f"r{index}"] = rate
    for index in range(draw(st.integers(0, 2))):
        resources[f"s{index}"] = {"kind": "space", "capacity": draw(st.sampled_from([1, 2, 5]))}
    rates = [n for n in resources if n.startswith("r")]
    spaces = [n for n in resources if n.startswith("s")]
    amounts = st.sampled_from([
        0.0, 0.2, {"dist": "exponential", "mean": 0.3}, {"dist": "uniform", "low": 0.0, "high": 0.4},
        {"dist": "lognormal", "mean": 0.2, "cv": 1.5}, {"dist": "empirical", "values": [0.0, 0.1, 0.5]},
    ])  # fmt: skip
    tools: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 4))):
        work = {r: draw(amounts) for r in draw(st.lists(st.sampled_from(rates), max_size=3, unique=True))}
        tool: dict[str, Any] = {"work": work}
        held = draw(st.lists(st.sampled_from(spaces), max_size=2, unique=True)) if spaces else []
        if held:
            tool["space"] = {s: min(draw(st.sampled_from([1, 1.5])), resources[s]["capacity"]) for s in held}
        tools[f"t{index}"] = tool
    types: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        nodes: dict[str, Any] = {}
        for n in range(draw(st.integers(1, 5))):
            node: dict[str, Any] = {"tool": draw(st.sampled_from(list(tools)))}
            if nodes:
                node["after"] = draw(st.lists(st.sampled_from(list(nodes)), max_size=3, unique=True))
            nodes[f"n{n}"] = node
        types[f"y{index}"] = {
            "rate_per_min": draw(st.sampled_from([10, 40, 90])),
            "arrival": draw(st.sampled_from(["poisson", "deterministic"])),
            "weight": draw(st.sampled_from([1.0, 2.0, 0.5])),
            "priority": draw(st.integers(0, 2)),
            "nodes": nodes,
        }
    return {
        "name": "random-v1",
        "horizon_s": draw(st.sampled_from([60.0, 300.0])),
        "warmup_s": draw(st.sampled_from([0.0, 20.0])),
        "drain": draw(st.booleans()),
        "max_in_flight": draw(st.sampled_from([30, 1_000_000])),
        "resources": resources,
        "tools": tools,
        "request_types": types,
    }


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=v1_scenarios(), seed=st.integers(0, 2**31), replication=st.integers(0, 3))
def test_random_v1_scenarios_give_the_python_engines_summary(data: dict[str, Any], seed: int,
                                                             replication: int) -> None:  # fmt: skip
    assert_same_run(parse_scenario(data), seed, replication)
