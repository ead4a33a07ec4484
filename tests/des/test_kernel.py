"""The compiled event loop gives the Python engine's summaries bit for bit on every scenario that cannot fail (model v1,
and model v2's branches, variants, attributes, ``per``, join overheads, priorities and arrival processes).

Scenarios that can fail are checked in test_kernel_failures.py, with this module's random generator."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgpack
import pytest

from simfleet.shared.errors import SimulationError
from simfleet.worker.des.compiled import CompiledSimulation
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario, load_scenario, parse_scenario

from .helpers import assert_same_run, fork_join, one_queue, plain

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
V1_EXAMPLES = ["deep_research_sla", "mixed_workload", "npu_bottleneck", "web_search_load_test"]


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


def test_an_unused_tool_may_scale_its_work_by_an_attribute_no_type_declares() -> None:
    # Found by the fuzzer: the kernel's tables are built for every template, run or not.
    scenario = parse_scenario({
        "name": "unused-per", "horizon_s": 300.0,
        "resources": {"cpu": {"capacity": 1.0}},
        "tools": {"used": {"work": {"cpu": {"dist": "exponential", "mean": 0.5}}},
                  "unused": {"work": {"cpu": {"per": "doc_mb", "amount": 1.0}}}},
        "request_types": {"r": {"rate_per_min": 30, "nodes": {"a": {"tool": "used"}}}},
    })  # fmt: skip
    assert assert_same_run(scenario, 1, 0)["overall"]["completed"] > 0
