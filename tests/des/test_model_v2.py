"""Model v2 of the request-latency simulator: the exact semantics of failures, timeouts, retries, fallbacks,
priorities, branches, attributes and overheads on cases small enough to work out by hand, and determinism and
save/resume with all of them at once."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from simfleet.producer.sla import search_sla
from simfleet.worker.des.engine import Simulation, run_replication
from simfleet.worker.des.scenario import parse_scenario

from .helpers import faulty, without_wall_clock

ARRIVAL_S = 100.0
"""A deterministic type at 0.6 requests/min has its one arrival before the horizon at 100 s."""


def one_request(tools: dict[str, Any], nodes: dict[str, Any], **resources: Any) -> Any:
    """The summary of a run with exactly one request (arriving at 100 s) of type ``r``."""
    scenario = parse_scenario({
        "horizon_s": 150.0,
        "resources": {"cpu": {"capacity": 1.0}, "net": {"capacity": 1.0}, **resources},
        "tools": tools,
        "request_types": {"r": {"rate_per_min": 0.6, "arrival": "deterministic", "nodes": nodes}},
    })  # fmt: skip
    return run_replication(scenario, seed=1)


def finished_latency(summary: Any) -> float:
    """The one request's latency, successful or not."""
    return float(summary.types["r"].all_finished.max_s if summary.types["r"].all_finished else summary.types["r"].max_s)


def test_a_cancelled_tool_gives_its_share_back_at_once_and_its_done_work_is_wasted():
    # a and b share the cpu at 0.5 each; a times out at 1 s having done 0.5, then b runs alone: 0.5 + 1.5 = 2.5 s.
    summary = one_request(
        {"slow": {"work": {"cpu": 10}, "timeout_s": 1, "on_failure": "skip"}, "quick": {"work": {"cpu": 2}}},
        {"a": {"tool": "slow"}, "b": {"tool": "quick"}},
    )
    figures = summary.types["r"]
    assert (figures.completed, figures.max_s) == (1, 2.5)
    assert summary.nodes["r"]["a"].timed_out == 1 and summary.nodes["r"]["a"].skipped == 1
    assert summary.resources["cpu"].wasted_work_per_s * summary.window_s == pytest.approx(0.5, rel=1e-12)


def test_a_timed_out_tool_frees_its_space_at_once_for_the_tool_waiting_for_it():
    summary = one_request(
        {"hog": {"work": {"cpu": 10}, "space": {"mem": 1}, "timeout_s": 1, "on_failure": "skip"},
         "small": {"work": {"net": 1}, "space": {"mem": 1}}},
        {"a": {"tool": "hog"}, "b": {"tool": "small"}},
        mem={"kind": "space", "capacity": 1},
    )  # fmt: skip
    assert summary.types["r"].max_s == 2.0  # b waits 1 s for the space, then needs 1 s of the network
    assert summary.resources["mem"].mean_waiting * summary.window_s == pytest.approx(1.0, rel=1e-12)


def test_a_tool_waiting_for_a_service_slot_can_time_out_before_it_starts():
    summary = one_request(
        {"long": {"work": {"cpu": 5}}, "short": {"work": {"cpu": 1}, "timeout_s": 2, "on_failure": "skip"}},
        {"a": {"tool": "long"}, "b": {"tool": "short"}},
        cpu={"capacity": 1.0, "max_active": 1},
    )
    assert summary.types["r"].max_s == 5.0
    assert summary.nodes["r"]["b"].timed_out == 1
    assert summary.resources["cpu"].wasted_work_per_s == 0.0  # it never ran
    assert summary.resources["cpu"].mean_waiting * summary.window_s == pytest.approx(2.0, rel=1e-12)


def test_a_completion_at_the_very_instant_of_its_timeout_wins():
    summary = one_request({"t": {"work": {"cpu": 1}, "timeout_s": 1}}, {"a": {"tool": "t"}})
    assert (summary.types["r"].completed, summary.types["r"].timed_out, summary.types["r"].max_s) == (1, 0, 1.0)


def test_a_failed_request_cancels_its_other_tools():
    summary = one_request(
        {"bad": {"work": {"cpu": 1}, "fail_prob": 1.0}, "long": {"work": {"net": 10}}},
        {"a": {"tool": "bad"}, "b": {"tool": "long"}},
    )
    figures = summary.types["r"]
    assert (figures.completed, figures.failed, figures.success_ratio) == (0, 1, 0.0)
    assert figures.all_finished.max_s == 1.0
    assert figures.mean_s is None  # latency figures are over successful requests
    window = summary.window_s
    assert summary.resources["cpu"].wasted_work_per_s * window == pytest.approx(1.0, rel=1e-12)
    assert summary.resources["net"].wasted_work_per_s * window == pytest.approx(1.0, rel=1e-12)
    assert summary.in_flight == 0


def test_retries_wait_their_exponential_backoff_and_each_attempt_times_out_exactly():
    # attempts start at 0, 1.5, 3.5 and 6 (waits 0.5, 1, then 1.5 = max_s) and each times out 1 s later.
    summary = one_request(
        {"t": {"work": {"cpu": 10}, "timeout_s": 1, "retries": 3,
               "backoff_s": {"base_s": 0.5, "factor": 2, "max_s": 1.5}}},
        {"a": {"tool": "t"}},
    )  # fmt: skip
    assert summary.types["r"].timed_out == 1
    assert summary.types["r"].all_finished.max_s == 7.0
    assert summary.nodes["r"]["a"].attempts == 4 and summary.nodes["r"]["a"].timed_out == 4


def test_a_fallback_runs_once_in_the_nodes_place_with_its_own_policy():
    summary = one_request(
        {"primary": {"work": {"cpu": 2}, "timeout_s": 1, "on_failure": {"fallback": "cache"}},
         "cache": {"work": {"cpu": 0.25}}},
        {"a": {"tool": "primary"}},
    )  # fmt: skip
    assert summary.types["r"].max_s == 1.25
    node = summary.nodes["r"]["a"]
    assert (node.attempts, node.timed_out, node.fallbacks) == (2, 1, 1)


def test_a_node_override_replaces_only_the_keys_it_names():
    tools = {"t": {"work": {"cpu": 10}, "timeout_s": 1, "retries": 2}}
    summary = one_request(tools, {"a": {"tool": "t", "retries": 0}})
    assert summary.nodes["r"]["a"].attempts == 1 and summary.types["r"].all_finished.max_s == 1.0


def test_work_per_attribute_and_join_overhead_add_up_exactly():
    scenario = parse_scenario({
        "horizon_s": 150.0,
        "resources": {"cpu": {"capacity": 1.0, "join_overhead": 0.5}},
        "tools": {"t": {"work": {"cpu": {"per": "doc_mb", "amount": 2}}}},
        "request_types": {"r": {"rate_per_min": 0.6, "arrival": "deterministic",
                                "attributes": {"doc_mb": {"dist": "deterministic", "value": 3}},
                                "nodes": {"a": {"tool": "t"}}}},
    })  # fmt: skip
    assert run_replication(scenario, seed=1).types["r"].max_s == 6.5  # 3 x 2 + 0.5


def test_a_node_of_probability_zero_never_runs():
    summary = one_request({"t": {"work": {"cpu": 1}}}, {"a": {"tool": "t", "prob": 0.0}, "b": {"tool": "t"}})
    assert summary.nodes["r"]["a"].branch_skipped == 1 and summary.nodes["r"]["a"].attempts == 0
    assert summary.types["r"].max_s == 1.0


def _priority_run(kind: str, priority: int) -> dict[str, float]:
    """lo arrives at 0 and 0.1, hi at 0.2, each needing 1 s of a server (a FIFO limit or a space of 1)."""
    resources = {"cpu": {"capacity": 1.0}}
    tool: dict[str, Any] = {"work": {"cpu": 1}}
    if kind == "slot":
        resources["cpu"]["max_active"] = 1
    else:
        resources["mem"] = {"kind": "space", "capacity": 1}
        tool["space"] = {"mem": 1}
        resources["cpu"]["per_tool_cap"] = 1.0
    scenario = parse_scenario({
        "horizon_s": 10.0,
        "resources": resources,
        "tools": {"t": tool},
        "request_types": {
            "lo": {"arrival": {"process": "trace", "times_s": [0.0, 0.1]}, "nodes": {"a": {"tool": "t"}}},
            "hi": {"arrival": {"process": "trace", "times_s": [0.2]}, "priority": priority,
                   "nodes": {"a": {"tool": "t"}}},
        },
    })  # fmt: skip
    summary = run_replication(scenario, seed=1)
    return {name: round(float(summary.types[name].max_s), 9) for name in ("lo", "hi")}


@pytest.mark.parametrize("kind", ["slot", "space"])
def test_waiting_tools_are_admitted_by_priority_then_in_order(kind):
    assert _priority_run(kind, priority=1) == {"lo": 2.9, "hi": 1.8}  # hi goes before the lo that waited longer
    assert _priority_run(kind, priority=0) == {"lo": 1.9, "hi": 2.8}  # equal priorities: first come, first served


def test_outcomes_add_up_to_the_arrivals_with_and_without_drain():
    for scenario in (faulty(), faulty(drain=False)):
        summary = run_replication(scenario, seed=5)
        for figures in (*summary.types.values(), summary.overall):
            assert figures.completed + figures.failed + figures.timed_out + figures.unfinished == figures.arrived
            assert figures.failed + figures.timed_out > 0
        assert sum(f.arrived for f in summary.types.values()) == summary.overall.arrived


@pytest.mark.parametrize("cut_s", [0.0, 150.0, 777.7, 1_999.0, 2_000.0, 2_100.0])
def test_save_and_resume_with_every_v2_feature_equals_the_uninterrupted_run(cut_s):
    uninterrupted = Simulation(faulty(), seed=11)
    uninterrupted.run()
    first = Simulation(faulty(), seed=11)
    first.run(until_s=cut_s)
    wire = msgpack.packb(first.state_dict())
    resumed = Simulation.from_state(faulty(), msgpack.unpackb(wire, strict_map_key=False))
    resumed.run()
    assert without_wall_clock(resumed.summary()) == without_wall_clock(uninterrupted.summary())


def test_the_plain_data_form_of_a_v2_scenario_reads_back_the_same_scenario_and_run():
    scenario = faulty()
    again = parse_scenario(scenario.to_dict(), scenario.source)
    assert again == scenario
    assert without_wall_clock(run_replication(again, seed=2)) == without_wall_clock(run_replication(scenario, seed=2))


def _two_separate_types(fail_prob: float) -> Any:
    return parse_scenario({
        "horizon_s": 1_000.0,
        "resources": {"cpu": {"capacity": 1.0}, "net": {"capacity": 1.0}},
        "tools": {"a": {"work": {"cpu": {"dist": "exponential", "mean": 0.5}}, "retries": 3},
                  "b": {"work": {"net": {"dist": "exponential", "mean": 0.5}}, "fail_prob": 0.2, "retries": 1}},
        "request_types": {
            "A": {"rate_per_min": 40,
                  "nodes": {"x": {"tool": "a", "fail_prob": fail_prob}, "y": {"tool": "a", "prob": 0.5}}},
            "B": {"rate_per_min": 40, "nodes": {"x": {"tool": "b"}, "y": {"tool": "b", "after": ["x"], "prob": 0.5}}},
        },
    })  # fmt: skip


def test_one_types_failure_probability_changes_no_draw_of_another_type():
    low, high = (run_replication(_two_separate_types(p), seed=4) for p in (0.05, 0.4))
    assert low.types["A"] != high.types["A"]  # the change did something
    assert low.types["B"] == high.types["B"]
    assert low.nodes["B"] == high.nodes["B"]


def test_a_run_is_a_pure_function_of_seed_and_replication():
    first, second = (without_wall_clock(run_replication(faulty(), seed=9, replication=2)) for _ in range(2))
    assert first == second
    assert first != without_wall_clock(run_replication(faulty(), seed=9, replication=3))


def test_the_sla_search_finds_where_timeouts_bring_the_success_ratio_under_its_floor():
    # M/M/1-PS whose requests give up after 6 s: the more load, the longer the sojourn, the more time out.
    scenario = parse_scenario({
        "horizon_s": 3_000.0, "warmup_s": 200.0,
        "resources": {"cpu": {"capacity": 1.0}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}, "timeout_s": 6.0}},
        "request_types": {"r": {"rate_per_min": 30, "nodes": {"job": {"tool": "job"}}}},
    })  # fmt: skip

    def local(probe, replications, seed, first=0):
        return [run_replication(probe, seed, i) for i in range(first, first + replications)]

    result = search_sla(scenario, local, slas=["r:success_ratio>0.95"], replications=4, max_replications=12,
                        rel_tol=0.05, seed=3)  # fmt: skip
    lo, hi = result.best_passing, result.first_failing
    assert lo is not None and hi is not None and lo.rate_per_min < hi.rate_per_min
    assert lo.terms[0].value.low >= 0.95  # passes with 95% confidence
    assert hi.terms[0].value.high < 0.95  # fails with 95% confidence
    # At no load nothing times out (P(work > 6 s) = e^-6), at the capacity bound (60/min) nearly everything would:
    # the answer lies well inside.
    assert 10.0 < lo.rate_per_min < 55.0


def test_a_searched_rate_scales_an_arrival_schedule_with_the_same_draws():
    scenario = parse_scenario({
        "horizon_s": 4_000.0,
        "resources": {"cpu": {"capacity": 10.0}},
        "tools": {"job": {"work": {"cpu": 0.1}}},
        "request_types": {"r": {"nodes": {"job": {"tool": "job"}}, "arrival": {
            "process": "schedule", "repeat_s": 1_000.0,
            "windows": [{"start_s": 0.0, "rate_per_min": 30}, {"start_s": 500.0, "rate_per_min": 90}]}}},
    })  # fmt: skip
    assert scenario.request_types["r"].rate_per_min == pytest.approx(60.0)
    doubled = scenario.with_rate(120.0, "r")
    assert doubled.request_types["r"].process.scale == pytest.approx(2.0)
    assert doubled.request_types["r"].rate_per_min == pytest.approx(120.0)
    assert parse_scenario(doubled.to_dict()) == doubled  # the scale travels with the scenario
    base, more = (run_replication(s, seed=6).types["r"].arrived for s in (scenario, doubled))
    assert base == pytest.approx(4_000, rel=0.05) and more == pytest.approx(2 * base, rel=0.05)
