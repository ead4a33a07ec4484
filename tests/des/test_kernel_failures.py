"""The compiled event loop gives the Python engine's summaries bit for bit on scenarios that can fail: failures,
timeouts, retries with every backoff form, skip, fallback chains, cancellation and wasted work, saved and resumed with
attempts, timers and retries pending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest

from simfleet.worker.des import kernel_layout as L
from simfleet.worker.des.compiled import CompiledSimulation
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario, load_scenario, parse_scenario

from .helpers import assert_same_run, faulty, plain

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def one_request(tools: dict[str, Any], nodes: dict[str, Any], **resources: Any) -> Scenario:
    """test_model_v2's scenario: exactly one request (arriving at 100 s) of type ``r``."""
    return parse_scenario({
        "horizon_s": 150.0,
        "resources": {"cpu": {"capacity": 1.0}, "net": {"capacity": 1.0}, **resources},
        "tools": tools,
        "request_types": {"r": {"rate_per_min": 0.6, "arrival": "deterministic", "nodes": nodes}},
    })  # fmt: skip


HAND_WORKED = {
    "cancelled-share": one_request(
        {"slow": {"work": {"cpu": 10}, "timeout_s": 1, "on_failure": "skip"}, "quick": {"work": {"cpu": 2}}},
        {"a": {"tool": "slow"}, "b": {"tool": "quick"}},
    ),
    "space-freed": one_request(
        {"hog": {"work": {"cpu": 10}, "space": {"mem": 1}, "timeout_s": 1, "on_failure": "skip"},
         "small": {"work": {"net": 1}, "space": {"mem": 1}}},
        {"a": {"tool": "hog"}, "b": {"tool": "small"}},
        mem={"kind": "space", "capacity": 1},
    ),
    "waiting-slot-timeout": one_request(
        {"long": {"work": {"cpu": 5}}, "short": {"work": {"cpu": 1}, "timeout_s": 2, "on_failure": "skip"}},
        {"a": {"tool": "long"}, "b": {"tool": "short"}},
        cpu={"capacity": 1.0, "max_active": 1},
    ),
    "completion-at-timeout": one_request({"t": {"work": {"cpu": 1}, "timeout_s": 1}}, {"a": {"tool": "t"}}),
    "failed-request-cancels": one_request(
        {"bad": {"work": {"cpu": 1}, "fail_prob": 1.0}, "long": {"work": {"net": 10}}},
        {"a": {"tool": "bad"}, "b": {"tool": "long"}},
    ),
    "backoff-timeouts": one_request(
        {"t": {"work": {"cpu": 10}, "timeout_s": 1, "retries": 3,
               "backoff_s": {"base_s": 0.5, "factor": 2, "max_s": 1.5}}},
        {"a": {"tool": "t"}},
    ),
    "fallback": one_request(
        {"primary": {"work": {"cpu": 2}, "timeout_s": 1, "on_failure": {"fallback": "cache"}},
         "cache": {"work": {"cpu": 0.25}}},
        {"a": {"tool": "primary"}},
    ),
    "node-override": one_request({"t": {"work": {"cpu": 10}, "timeout_s": 1, "retries": 2}},
                                 {"a": {"tool": "t", "retries": 0}}),
    "fallback-chain": one_request(
        {"a": {"work": {"cpu": 1}, "fail_prob": 1.0, "retries": 1, "on_failure": {"fallback": "b"}},
         "b": {"work": {"cpu": 0.0}, "fail_prob": 1.0, "retries": 2, "on_failure": {"fallback": "c"}},
         "c": {"work": {"net": 0.5}, "timeout_s": 0.2, "on_failure": "skip"}, "d": {"work": {"net": 1}}},
        {"x": {"tool": "a"}, "y": {"tool": "d", "after": ["x"]}},
    ),
    # A retry waits 5 s, but its request fails at 2 s: the retry is dropped when it comes up.
    "retry-of-failed-request": one_request(
        {"a": {"work": {"cpu": 1}, "fail_prob": 1.0, "retries": 1, "backoff_s": 5.0},
         "b": {"work": {"net": 2}, "fail_prob": 1.0}},
        {"a": {"tool": "a"}, "b": {"tool": "b"}, "c": {"tool": "b", "after": ["a"]}},
    ),
    # a and b finish at the same instant; a fails the request, which cancels b before b is looked at.
    "simultaneous-failure": one_request(
        {"bad": {"work": {"cpu": 1}, "fail_prob": 1.0}, "ok": {"work": {"cpu": 1}}},
        {"a": {"tool": "bad"}, "b": {"tool": "ok"}, "c": {"tool": "ok", "after": ["b"]}},
    ),
    # Two tools without work wait in the ready list; the first fails the request, so the second must not finish.
    "zero-work-cancelled": one_request(
        {"zbad": {"work": {"cpu": 0.0}, "fail_prob": 1.0}, "z": {"work": {"cpu": 0.0}}, "t": {"work": {"cpu": 1}}},
        {"a": {"tool": "zbad"}, "b": {"tool": "z"}, "c": {"tool": "t", "after": ["b"]}},
    ),
    "cancel-order": parse_scenario({
        "horizon_s": 50.0,
        "resources": {"cpu": {"capacity": 1.0}, "net": {"capacity": 1.0}, "s1": {"kind": "space", "capacity": 1},
                      "s2": {"kind": "space", "capacity": 1}},
        "tools": {"bad": {"work": {"net": 1}, "fail_prob": 1.0}, "hold1": {"work": {"cpu": 100}, "space": {"s1": 1}},
                  "hold2": {"work": {"cpu": 100}, "space": {"s2": 1}}, "w1": {"work": {"net": 1}, "space": {"s1": 1}},
                  "w2": {"work": {"net": 1}, "space": {"s2": 1}},
                  "after": {"work": {"net": {"dist": "exponential", "mean": 1.0}}}},
        "request_types": {
            # r fails at 1 s and cancels b then c (the order they began): x's tool gets s1 and joins the net just
            # before y's, both finish at the same instant, and x's next node draws the template's first work.
            "r": {"arrival": {"process": "trace", "times_s": [0.0]},
                  "nodes": {"a": {"tool": "bad"}, "b": {"tool": "hold1"}, "c": {"tool": "hold2"}}},
            "x": {"arrival": {"process": "trace", "times_s": [0.1]},
                  "nodes": {"p": {"tool": "w1"}, "q": {"tool": "after", "after": ["p"]}}},
            "y": {"arrival": {"process": "trace", "times_s": [0.2]},
                  "nodes": {"p": {"tool": "w2"}, "q": {"tool": "after", "after": ["p"]}}},
        },
    }),
}  # fmt: skip
"""test_model_v2's hand-worked cases, a chain of fallbacks with zero work and immediate retries, and the cases where
something stale must be passed over (a retry, a completion, a ready tool) or the order of cancellations shows."""


LATENCY_S = {"cancelled-share": 2.5, "space-freed": 2.0, "waiting-slot-timeout": 5.0, "completion-at-timeout": 1.0,
             "failed-request-cancels": 1.0, "backoff-timeouts": 7.0, "fallback": 1.25, "node-override": 1.0,
             "fallback-chain": 3.2, "retry-of-failed-request": 2.0, "simultaneous-failure": 2.0,
             "zero-work-cancelled": 0.0, "cancel-order": 1.0}  # fmt: skip
"""The one request's latency in each hand-worked case (successful or not), as test_model_v2 works it out."""


@pytest.mark.parametrize("name", sorted(HAND_WORKED))
def test_the_hand_worked_failure_cases_give_the_python_engines_summary(name: str) -> None:
    summary = assert_same_run(HAND_WORKED[name], 1, 0)
    assert summary["types"]["r"]["all_finished"]["max_s"] == pytest.approx(LATENCY_S[name], rel=1e-12)


def test_the_fallback_chain_runs_every_attempt_within_one_instant_where_the_work_is_zero() -> None:
    summary = assert_same_run(HAND_WORKED["fallback-chain"], 1, 0)
    x = summary["nodes"]["r"]["x"]
    # a: 2 attempts (1 s each, failed), b: 3 failed attempts of zero work, c: timed out after 0.2 s, then skipped.
    assert (x["attempts"], x["failed"], x["timed_out"], x["fallbacks"], x["skipped"]) == (6, 5, 1, 2, 1)


@pytest.mark.parametrize("seed", [2, 9])
def test_the_failure_example_scenario_gives_the_python_engines_summary(seed: int) -> None:
    summary = assert_same_run(load_scenario(SCENARIOS / "rag_with_failures.yaml"), seed, 1)
    overall = summary["overall"]
    assert overall["failed"] + overall["timed_out"] > 0
    assert any(r.get("wasted_work_per_s", 0.0) > 0.0 for r in summary["resources"].values())


def test_every_v2_feature_at_once_gives_the_python_engines_summary() -> None:
    # (skips are rare in this scenario: the hand-worked cases and the random scenarios exercise them)
    totals = dict.fromkeys(("failed", "timed_out", "fallbacks", "branch_skipped"), 0)
    for seed, drain in ((3, True), (5, False), (6, True), (12, False)):
        summary = assert_same_run(faulty(drain=drain), seed, 0)
        for figures in summary["nodes"].values():
            for node in figures.values():
                for figure in totals:
                    totals[figure] += node[figure]
    assert min(totals.values()) > 0, totals  # every node figure was exercised


def pending(sim: CompiledSimulation) -> dict[str, int]:
    """Timers and retries in the compiled run's event heap (stale ones included), and attempts in flight."""
    kinds = sim.ev_ki[: int(sim.gi[L.EV_N]), 0] // L.KIND_SHIFT
    attempts = int(sim.tool_i.shape[0] - sim.gi[L.TOOL_FREE_N])
    return {"timers": int((kinds == L.TIMEOUT).sum()), "retries": int((kinds == L.RETRY).sum()), "attempts": attempts}


def retrying() -> Scenario:
    """Failures with long backoffs, timeouts, a fallback that may be skipped, a space resource and a FIFO limit: at
    most instants some attempt runs, some timer and some retry wait."""
    return parse_scenario({
        "name": "retrying", "horizon_s": 300.0, "warmup_s": 20.0,
        "resources": {"cpu": {"capacity": 1.5, "max_active": 3}, "net": {"capacity": 1.0},
                      "mem": {"kind": "space", "capacity": 2}},
        "tools": {
            "flaky": {"work": {"cpu": {"dist": "exponential", "mean": 0.5}}, "fail_prob": 0.4, "retries": 3,
                      "backoff_s": {"base_s": 1.0, "factor": 2.0, "max_s": 3.0}, "on_failure": {"fallback": "slow"}},
            "slow": {"work": {"cpu": 1.0, "net": 0.3}, "timeout_s": 0.8, "retries": 1, "backoff_s": 0.5,
                     "on_failure": "skip"},
            "tail": {"work": {"net": {"dist": "exponential", "mean": 0.3}}, "space": {"mem": 1}, "timeout_s": 1.0,
                     "retries": 2},
        },
        "request_types": {"r": {"rate_per_min": 50, "nodes": {
            "a": {"tool": "flaky"}, "b": {"tool": "tail", "after": ["a"]}, "c": {"tool": "slow", "prob": 0.7}}}},
    })  # fmt: skip


def test_a_failing_run_saved_and_resumed_at_many_cuts_equals_the_python_engine() -> None:
    # Cuts every 7.3 s: most fall with attempts running and timers and retries waiting in the heap.
    scenario = retrying()
    python, compiled = Simulation(scenario, 11, 1), CompiledSimulation(scenario, 11, 1)
    seen = {"timers": 0, "retries": 0, "attempts": 0}
    until = 0.0
    while not python.run(until):
        assert not compiled.run(until)
        assert (compiled.now, compiled.events, compiled.next_event_s) == (
            python.now,
            python.events,
            python.next_event_s,
        )
        for key, value in pending(compiled).items():
            seen[key] += value > 0
        compiled = CompiledSimulation.from_state(scenario, msgpack.unpackb(msgpack.packb(compiled.state_dict())))
        until += 7.3
    assert compiled.run(until)
    assert plain(compiled.summary()) == plain(python.summary())
    assert compiled.events == python.events
    assert min(seen.values()) >= 5, seen


def test_a_paused_failing_run_summarises_as_the_python_engine_does() -> None:
    # A paused summary folds the failure latencies kept so far into their sketch, as the engine's does.
    scenario = faulty(horizon_s=600.0)
    python, compiled = Simulation(scenario, 4), CompiledSimulation(scenario, 4)
    for until in (250.0, 420.0):
        python.run(until)
        compiled.run(until)
        assert plain(compiled.summary()) == plain(python.summary())
    python.run()
    compiled.run()
    assert plain(compiled.summary()) == plain(python.summary())


def test_an_overloaded_failing_run_grows_its_heaps_events_and_failure_buffers() -> None:
    # A slow network: hundreds in flight, cancelled entries pile up in the heaps, timers and retries in the event heap.
    scenario = faulty(horizon_s=1_500.0, resources={
        "cpu": {"capacity": 2.0, "max_active": 2, "per_tool_cap": 1.0, "join_overhead": 0.01},
        "net": {"capacity": 0.2},
        "mem": {"kind": "space", "capacity": 3},
    })  # fmt: skip
    python, compiled = Simulation(scenario, 8), CompiledSimulation(scenario, 8)
    sizes = (compiled.rh_kf.shape[1], compiled.ev_kf.shape[0], compiled.fail_buf.shape[1])
    python.run()
    compiled.run()
    assert plain(compiled.summary()) == plain(python.summary())
    grown = (compiled.rh_kf.shape[1], compiled.ev_kf.shape[0], compiled.fail_buf.shape[1])
    assert all(after > before for before, after in zip(sizes, grown, strict=True)), (sizes, grown)
