"""The compiled event loop gives the Python engine's summaries bit for bit on every scenario that cannot fail (model v1,
and model v2's branches, variants, attributes, ``per``, join overheads, priorities and arrival processes).

Scenarios that can fail are checked in test_kernel_failures.py, with this module's random generator."""

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

from simfleet.shared.errors import SimulationError
from simfleet.worker.des.compiled import CompiledSimulation, unsupported_features
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
    "scenario",
    [lambda: faulty(), lambda: load_scenario(SCENARIOS / "rag_with_failures.yaml"), lambda: fork_join()],
    ids=["faulty", "rag_with_failures", "fork_join"],
)
def test_no_feature_of_a_valid_scenario_is_left_to_the_python_engine(scenario: Any) -> None:
    assert unsupported_features(scenario()) == []


# ------------------------------------------------------------------------------- model v2 features without failures

MMPP = {"process": "mmpp", "rates_per_min": [20, 80], "mean_sojourn_s": [60, 20]}
SCHEDULE = {"process": "schedule", "repeat_s": 600.0,
            "windows": [{"start_s": 0.0, "rate_per_min": 50}, {"start_s": 300.0, "rate_per_min": 0}]}  # fmt: skip
TRACE = {"process": "trace", "times_s": [0.5 * i for i in range(3_000)]}
"""3,000 arrivals every 0.5 s: more than one block of times, and the trace runs out at 1,500 s, before the horizon."""


def without_failures(batch_arrival: Any = None, **overrides: Any) -> Scenario:
    """Every model v2 feature that cannot fail: branch probabilities (also inside a variant), variants, random and
    constant attributes scaling work (``per``) on two resources, a join overhead, priorities at a FIFO limit and a
    space resource, and an arrival process (an MMPP unless given) beside a Poisson type."""
    data: dict[str, Any] = {
        "name": "v2-without-failures", "horizon_s": 2_000.0, "warmup_s": 100.0,
        "resources": {
            "cpu": {"capacity": 2.0, "max_active": 2, "per_tool_cap": 1.0, "join_overhead": 0.01},
            "net": {"capacity": 1.0},
            "mem": {"kind": "space", "capacity": 3},
        },
        "tools": {
            "fetch": {"work": {"net": {"per": "size", "amount": {"dist": "exponential", "mean": 0.1}}}},
            "cache": {"work": {"cpu": 0.05}},
            "think": {"work": {"cpu": {"dist": "exponential", "mean": 0.4}, "net": {"per": "size", "amount": 0.05}},
                      "space": {"mem": 1}},
            "write": {"work": {"cpu": 0.1, "net": {"dist": "uniform", "low": 0.05, "high": 0.15}}},
        },
        "request_types": {
            "chat": {
                "rate_per_min": 40, "priority": 1,
                "attributes": {"size": {"dist": "lognormal", "mean": 2.0, "cv": 1.0}},
                "nodes": {
                    "fetch": {"tool": "fetch", "prob": 0.7},
                    "think": {"tool": "think", "after": ["fetch"]},
                    "write": {"tool": "write", "after": ["think"], "prob": 0.5},
                },
            },
            "batch": {
                "arrival": batch_arrival or MMPP, "weight": 2.0,
                "attributes": {"size": {"dist": "exponential", "mean": 1.0}, "k": 2.0},
                "variants": {
                    "short": {"weight": 3, "nodes": {"think": {"tool": "think"}}},
                    "long": {"weight": 1, "nodes": {
                        "fetch": {"tool": "fetch"},
                        "c": {"tool": "cache", "prob": 0.3},
                        "think": {"tool": "think", "after": ["fetch", "c"]},
                    }},
                },
            },
        },
    }  # fmt: skip
    data.update(overrides)
    return parse_scenario(data)


@pytest.mark.parametrize("seed, replication", [(3, 1), (11, 0)])
@pytest.mark.parametrize("arrival", [MMPP, SCHEDULE, TRACE], ids=["mmpp", "schedule", "trace"])
def test_model_v2_without_failures_gives_the_python_engines_summary(arrival: Any, seed: int,
                                                                     replication: int) -> None:  # fmt: skip
    summary = assert_same_run(without_failures(arrival), seed, replication)
    nodes = summary["nodes"]
    # Every feature was exercised: both variants ran, the branch draws said no as well as yes.
    assert nodes["batch"]["short/think"]["attempts"] > 100 and nodes["batch"]["long/think"]["attempts"] > 50
    assert nodes["chat"]["fetch"]["branch_skipped"] > 100 and nodes["chat"]["fetch"]["attempts"] > 100
    assert nodes["batch"]["long/c"]["branch_skipped"] > 10


def feature_alone(feature: str) -> Scenario:
    """fork_join with one model v2 feature added."""
    if feature == "join_overhead":
        return fork_join(resources={"cpu": {"capacity": 2.0, "max_active": 3, "join_overhead": 0.05},
                                    "net": {"capacity": 1.0, "join_overhead": 0.02},
                                    "mem": {"kind": "space", "capacity": 4}})  # fmt: skip
    nodes = {"a": {"tool": "a"}, "b": {"tool": "b", "after": ["a"]}, "c": {"tool": "a", "after": ["a"]},
             "d": {"tool": "c", "after": ["b", "c"]}}  # fmt: skip
    q = {"rate_per_min": 30, "weight": 2, "arrival": "deterministic", "nodes": {"x": {"tool": "b"}}}
    if feature == "prob":
        nodes["b"]["prob"], nodes["d"]["prob"] = 0.4, 0.9
        return fork_join(request_types={"r": {"rate_per_min": 60, "nodes": nodes}, "q": q})
    if feature == "variants":
        variants = {"full": {"weight": 1.5, "nodes": nodes}, "quick": {"weight": 1, "nodes": {"x": {"tool": "c"}}},
                    "two": {"weight": 0.5, "nodes": {"x": {"tool": "b"}, "y": {"tool": "a", "after": ["x"]}}}}
        return fork_join(request_types={"r": {"rate_per_min": 60, "variants": variants}, "q": q})  # fmt: skip
    if feature == "attributes":
        tools = {"a": {"work": {"cpu": {"per": "n", "amount": {"dist": "exponential", "mean": 0.2}},
                                "net": {"per": "m", "amount": 0.1}}, "space": {"mem": 1}},
                 "b": {"work": {"cpu": 0.3,
                                "net": {"per": "m", "amount": {"dist": "uniform", "low": 0.1, "high": 0.3}}}},
                 "c": {"work": {"net": {"dist": "empirical", "values": [0.1, 0.2, 0.4]}}}}  # fmt: skip
        attributes = {"n": {"dist": "lognormal", "mean": 2.0, "cv": 1.5},
                      "m": {"dist": "empirical", "values": [0, 1, 3]}}
        q["attributes"] = {"m": 0.5}
        return fork_join(tools=tools, request_types={"r": {"rate_per_min": 60, "attributes": attributes,
                                                           "nodes": nodes}, "q": q})  # fmt: skip
    process = {"mmpp": MMPP, "schedule": SCHEDULE, "trace": TRACE}[feature]
    return fork_join(request_types={"r": {"arrival": process, "nodes": nodes}, "q": q})


@pytest.mark.parametrize("feature", ["join_overhead", "prob", "variants", "attributes", "mmpp", "schedule", "trace"])
def test_each_model_v2_feature_alone_gives_the_python_engines_summary(feature: str) -> None:
    for seed, replication in ((2, 0), (9, 3)):
        summary = assert_same_run(feature_alone(feature), seed, replication)
        assert summary["overall"]["completed"] > 1_000


@pytest.mark.parametrize("arrival", [MMPP, TRACE], ids=["mmpp", "trace"])
def test_a_model_v2_run_in_slices_saved_and_resumed_equals_the_python_engine(arrival: Any) -> None:
    # The decision, attribute and modulation streams, the arrival process and the blocks drawn ahead are all saved;
    # the run is long enough that each of them draws its next block after a resume (the trace's 2,049th time comes
    # at 1,024 s, the batch type's second block of decisions before that).
    cuts = (0.5, 150.0, 151.0, 640.0, 1_100.0, 1_500.0, 1_900.0, 2_000.0, 2_100.0)
    assert_resumes_exactly(without_failures(arrival, horizon_s=2_000.0), cuts)


def test_a_trace_resumed_after_its_second_block_goes_on_where_it_was() -> None:
    # 5,000 arrivals 0.05 s apart: blocks of times are computed at 0, 102.4 and 204.8 s; the cut at 210 s resumes a
    # run whose trace stream stands at its 4,096th time.
    scenario = parse_scenario({
        "name": "long-trace", "horizon_s": 300.0,
        "resources": {"cpu": {"capacity": 1.0}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 0.01}}}},
        "request_types": {"r": {"arrival": {"process": "trace", "times_s": [0.05 * i for i in range(5_000)]},
                                "nodes": {"job": {"tool": "job"}}}},
    })  # fmt: skip
    assert_resumes_exactly(scenario, (50.0, 120.0, 210.0, 260.0, 300.0))


def assert_resumes_exactly(scenario: Scenario, cuts: tuple[float, ...]) -> None:
    """Run in slices, saving, msgpacking and resuming at each cut: every slice and the summary equal the engine's."""
    python, compiled = Simulation(scenario, 4, 2), CompiledSimulation(scenario, 4, 2)
    for until_s in cuts:
        assert compiled.run(until_s) == python.run(until_s)
        assert (compiled.now, compiled.events, compiled.next_event_s) == (
            python.now,
            python.events,
            python.next_event_s,
        )
        state = msgpack.unpackb(msgpack.packb(compiled.state_dict()))
        compiled = CompiledSimulation.from_state(scenario, state)
    assert compiled.run() and python.run()
    assert plain(compiled.summary()) == plain(python.summary())
    assert compiled.events == python.events


def test_an_arrival_that_draws_several_decisions_across_a_block_boundary() -> None:
    # Five optional roots: each arrival draws five decisions, and 2,048 is not a multiple of 5, so some arrival
    # needs the end of one block and the start of the next.
    nodes = {f"n{i}": {"tool": "b", "prob": 0.5} for i in range(5)}
    q = {"rate_per_min": 30, "arrival": "deterministic", "nodes": {"x": {"tool": "b"}}}
    scenario = fork_join(horizon_s=1_000.0, request_types={"r": {"rate_per_min": 60, "arrival": "deterministic",
                                                                "nodes": nodes}, "q": q})  # fmt: skip
    summary = assert_same_run(scenario, 5, 0)
    nodes_run = sum(figures["attempts"] + figures["branch_skipped"] for figures in summary["nodes"]["r"].values())
    assert nodes_run == 5 * summary["types"]["r"]["arrived"] > 4_000


def test_thousands_in_flight_with_branches_and_variants_draw_decisions_far_ahead() -> None:
    # An overloaded net: thousands of requests in flight, so a single event may start thousands of nodes, and the
    # decisions kept ahead (one per node that may start, and one variant pick) grow past their first size.
    scenario = without_failures(horizon_s=1_500.0, resources={
        "cpu": {"capacity": 2.0, "max_active": 2, "per_tool_cap": 1.0, "join_overhead": 0.01},
        "net": {"capacity": 0.05},
        "mem": {"kind": "space", "capacity": 3},
    })  # fmt: skip
    summary = assert_same_run(scenario, 8, 0)
    assert summary["in_flight"] > 1_500 and summary["stopped_at_horizon"]


# ---------------------------------------------------------------------------------------------- random scenarios


FAIL_PROBS = st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])
TIMEOUTS = st.sampled_from([None, None, 0.05, 0.3, 2.0])
BACKOFFS = st.sampled_from([None, 0.0, 0.2, {"base_s": 0.1, "factor": 2.0, "max_s": 0.5},
                            {"base_s": 0.05, "factor": 3.0}])  # fmt: skip


def failure_policy(draw: Any, fallbacks: list[str]) -> dict[str, Any]:
    """A random failure policy: fail_prob, timeout_s, retries with every backoff form, and fail, skip or a fallback
    to one of ``fallbacks``."""
    policy: dict[str, Any] = {}
    if fail_prob := draw(FAIL_PROBS):
        policy["fail_prob"] = fail_prob
    if (timeout := draw(TIMEOUTS)) is not None:
        policy["timeout_s"] = timeout
    if retries := draw(st.sampled_from([0, 0, 1, 3])):
        policy["retries"] = retries
        if (backoff := draw(BACKOFFS)) is not None:
            policy["backoff_s"] = backoff
    on_failure = draw(st.sampled_from(["fail", "skip", "fallback"] if fallbacks else ["fail", "skip"]))
    if on_failure == "fallback":
        policy["on_failure"] = {"fallback": draw(st.sampled_from(fallbacks))}
    elif on_failure == "skip" or draw(st.booleans()):
        policy["on_failure"] = on_failure
    return policy


@st.composite
def random_scenarios(draw: Any, failures: bool = False) -> dict[str, Any]:
    """Random scenarios: up to three rate resources (with caps, FIFO limits and join overheads) and two space
    resources, zero-work tools, work scaled by attributes (``per``), random DAGs with branch probabilities, variants,
    weights and priorities, attributes, every kind of arrival (Poisson, deterministic, schedule, MMPP, trace), warmup,
    drain or not, and a small in-flight guard. With ``failures``, tools and nodes get failure policies
    (:func:`failure_policy`; a tool falls back only to a later one, so chains have no cycle, a node to any)."""
    resources: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        rate: dict[str, Any] = {"capacity": draw(st.sampled_from([0.5, 1.0, 3.0]))}
        if draw(st.booleans()):
            rate["per_tool_cap"] = draw(st.sampled_from([0.25, 1.0]))
        if draw(st.booleans()):
            rate["max_active"] = draw(st.integers(1, 3))
        if draw(st.integers(0, 3)) == 0:
            rate["join_overhead"] = draw(st.sampled_from([0.01, 0.1]))
        resources[f"r{index}"] = rate
    for index in range(draw(st.integers(0, 2))):
        resources[f"s{index}"] = {"kind": "space", "capacity": draw(st.sampled_from([1, 2, 5]))}
    rates = [n for n in resources if n.startswith("r")]
    spaces = [n for n in resources if n.startswith("s")]
    amounts = st.sampled_from([
        0.0, 0.2, {"dist": "exponential", "mean": 0.3}, {"dist": "uniform", "low": 0.0, "high": 0.4},
        {"dist": "lognormal", "mean": 0.2, "cv": 1.5}, {"dist": "empirical", "values": [0.0, 0.1, 0.5]},
    ])  # fmt: skip
    # Every type has both attributes (a tool may be scaled by either, whichever type runs it).
    attribute_dists = st.sampled_from([1.5, {"dist": "exponential", "mean": 1.0},
                                       {"dist": "empirical", "values": [0.0, 1.0, 2.0]}])  # fmt: skip
    scaled = draw(st.booleans())
    tools: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 4))):
        work: dict[str, Any] = {}
        for r in draw(st.lists(st.sampled_from(rates), max_size=3, unique=True)):
            amount = draw(amounts)
            per = draw(st.sampled_from([None, "size", "depth"])) if scaled else None
            work[r] = amount if per is None else {"per": per, "amount": amount}
        tool: dict[str, Any] = {"work": work}
        held = draw(st.lists(st.sampled_from(spaces), max_size=2, unique=True)) if spaces else []
        if held:
            tool["space"] = {s: min(draw(st.sampled_from([1, 1.5])), resources[s]["capacity"]) for s in held}
        tools[f"t{index}"] = tool
    if failures:
        names = list(tools)
        for index, name in enumerate(names):
            if draw(st.integers(0, 3)):
                tools[name].update(failure_policy(draw, names[index + 1 :]))

    def dag() -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for n in range(draw(st.integers(1, 5))):
            node: dict[str, Any] = {"tool": draw(st.sampled_from(list(tools)))}
            if nodes:
                node["after"] = draw(st.lists(st.sampled_from(list(nodes)), max_size=3, unique=True))
            if draw(st.integers(0, 3)) == 0:
                node["prob"] = draw(st.sampled_from([0.0, 0.3, 0.8]))
            overrides = failure_policy(draw, list(tools)) if failures and draw(st.integers(0, 2)) == 0 else {}
            if overrides:  # a node overrides some keys of its tool's policy
                for key in draw(st.lists(st.sampled_from(sorted(overrides)), min_size=1, unique=True)):
                    node[key] = overrides[key]
            nodes[f"n{n}"] = node
        return nodes

    types: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        rtype: dict[str, Any] = {
            "weight": draw(st.sampled_from([1.0, 2.0, 0.5])),
            "priority": draw(st.integers(0, 2)),
        }
        arrival = draw(st.sampled_from(["poisson", "deterministic", "poisson", "schedule", "mmpp", "trace"]))
        if arrival == "schedule":
            rtype["arrival"] = {"process": "schedule", "repeat_s": 60.0,
                                "windows": [{"start_s": 0.0, "rate_per_min": 90}, {"start_s": 30.0, "rate_per_min": 0}]}
        elif arrival == "mmpp":
            rtype["arrival"] = {"process": "mmpp", "rates_per_min": [20, 120], "mean_sojourn_s": [20, 5]}
        elif arrival == "trace":
            gaps = draw(st.lists(st.sampled_from([0.0, 0.5, 2.0]), min_size=1, max_size=200))
            rtype["arrival"] = {"process": "trace", "times_s": [sum(gaps[:i + 1]) for i in range(len(gaps))]}
        else:
            rtype.update(rate_per_min=draw(st.sampled_from([10, 40, 90])), arrival=arrival)  # fmt: skip
        if scaled:
            rtype["attributes"] = {"size": draw(attribute_dists), "depth": draw(attribute_dists)}
        if draw(st.integers(0, 2)) == 0:
            rtype["variants"] = {"a": {"weight": 2, "nodes": dag()}, "b": {"weight": 1, "nodes": dag()}}
        else:
            rtype["nodes"] = dag()
        types[f"y{index}"] = rtype
    return {
        "name": "random-with-failures" if failures else "random-without-failures",
        "horizon_s": draw(st.sampled_from([60.0, 300.0])),
        "warmup_s": draw(st.sampled_from([0.0, 20.0])),
        "drain": draw(st.booleans()),
        "max_in_flight": draw(st.sampled_from([30, 1_000_000])),
        "resources": resources,
        "tools": tools,
        "request_types": types,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=random_scenarios(), seed=st.integers(0, 2**31), replication=st.integers(0, 3))
def test_random_scenarios_without_failures_give_the_python_engines_summary(data: dict[str, Any], seed: int,
                                                                           replication: int) -> None:  # fmt: skip
    assert_same_run(parse_scenario(data), seed, replication)
