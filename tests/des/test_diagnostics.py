"""Honest reports: the space-resource capacity bound, no-load latencies and the warnings built on them, and where
the waiting happens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simfleet.producer.confidence import SlaTerm
from simfleet.producer.diagnostics import (
    bottleneck_text,
    no_load,
    sample_warnings,
    saturation,
    threshold_warnings,
    waiting_by_resource,
    wide_tails,
)
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import load_scenario, parse_scenario
from tests.des.helpers import one_queue


def local(scenario, replications, seed=1):
    return run_replications(scenario, replications=replications, seed=seed, processes=1)


def memory_limited(rate_per_min: float):
    """Four single-threaded cores, but memory for two tools at once: an M/M/2 whose limit is memory's, 120/min."""
    return parse_scenario({
        "name": "memory-limited", "horizon_s": 600, "warmup_s": 60,
        "resources": {"cpu": {"capacity": 4, "per_tool_cap": 1}, "mem": {"kind": "space", "capacity": 2}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}, "space": {"mem": 1}}},
        "request_types": {"r": {"rate_per_min": rate_per_min, "nodes": {"job": {"tool": "job"}}}},
    })  # fmt: skip


def test_the_capacity_bound_is_memorys_when_memory_is_the_true_limit():
    scenario = memory_limited(60)
    # Each job holds 1 of 2 memory units for its no-load run time, 1 work unit at one core's speed: 1 s.
    assert scenario.holding_time_s("job") == pytest.approx(1.0)
    assert scenario.bounds_per_min() == pytest.approx({"cpu": 240.0, "mem": 120.0})
    assert scenario.capacity_bound_per_min() == pytest.approx(120.0)
    assert scenario.capacity_bound_per_min("r") == pytest.approx(120.0)
    assert scenario.binding_resource() == "mem"
    above = local(memory_limited(1.15 * 120), 3)
    assert not all(s.stable for s in above) or saturation(above)
    below = local(memory_limited(0.6 * 120), 3)
    assert all(s.stable for s in below) and saturation(below) == []


def test_a_space_bound_counts_the_other_types_share_first():
    scenario = parse_scenario({
        "name": "two-types", "horizon_s": 100,
        "resources": {"cpu": {"capacity": 10}, "mem": {"kind": "space", "capacity": 4}},
        "tools": {"a": {"work": {"cpu": 2}, "space": {"mem": 1}}, "b": {"work": {"cpu": 10}, "space": {"mem": 2}}},
        "request_types": {"x": {"rate_per_min": 60, "nodes": {"a": {"tool": "a"}}},
                          "y": {"rate_per_min": 30, "nodes": {"b": {"tool": "b"}}}},
    })  # fmt: skip
    # Alone, a holds 1 unit for 2/10 s and b 2 units for 10/10 s: y uses 0.5/s x 2 = 1 unit on average.
    assert scenario.bounds_per_min("x")["mem"] == pytest.approx((4 - 1.0) / 0.2 * 60)
    assert scenario.bounds_per_min(None)["mem"] == pytest.approx(4 / (2 / 3 * 0.2 + 1 / 3 * 2.0) * 60)


def test_no_load_latency_is_the_work_alone_and_cached():
    fixed = no_load(one_queue(30, 2.0))
    assert fixed["r"] == pytest.approx({"mean": 2.0, "p50": 2.0, "p95": 2.0, "p99": 2.0}, rel=0.01)
    exponential = one_queue(50, {"dist": "exponential", "mean": 1.0}, per_tool_cap=0.5)
    figures = no_load(exponential)
    assert figures["r"]["mean"] == pytest.approx(2.0, rel=0.1)  # at the cap 0.5, not the capacity 1
    assert figures["r"]["p95"] == pytest.approx(2.0 * 2.996, rel=0.1)  # exponential: ln(20) x the mean
    assert no_load(exponential) is figures


def test_a_threshold_at_or_below_the_no_load_value_is_named():
    scenario = one_queue(30, 2.0)
    figures = no_load(scenario)
    lines = threshold_warnings(scenario, [SlaTerm("r", "p95", 1.5), SlaTerm("r", "mean", 3.0)], figures)
    assert lines == ["no rate can meet p95 of r < 1.5 s: even alone its p95 is 2 s"]


def test_a_quantile_from_too_few_requests_says_how_many_it_needs():
    summaries = local(one_queue(6, 0.5, horizon_s=1_000), 2)  # about 100 requests per replication
    fewest = min(s.types["r"].completed for s in summaries)
    lines = sample_warnings(["p50", "p95", "mean"], summaries)
    assert lines == [f"p95 of r comes from as few as {fewest} completed requests in a replication; a p95 needs at "
                     "least 200 (10 beyond it): a longer horizon_s gives them"]  # fmt: skip
    assert "needs at least 1000" in sample_warnings([SlaTerm("r", "p99", 9.0)], summaries)[0]


def test_a_resource_at_95_percent_is_near_saturation_and_an_unstable_study_is_left_to_say_so():
    busy = local(one_queue(58.5, 1.0, horizon_s=1_000), 2)
    assert all(s.stable for s in busy)
    lines = saturation(busy)
    assert any(line.startswith("near saturation: cpu is 9") for line in lines)
    calm = local(one_queue(30, 1.0, horizon_s=1_000), 2)
    assert saturation(calm, no_load(one_queue(30, 1.0))) == []
    unstable = local(one_queue(70, 1.0, horizon_s=200), 2)
    assert not unstable[0].stable and saturation(unstable) == []


def test_a_tail_many_times_its_no_load_value_with_a_wide_interval_is_near_saturation():
    summaries = local(one_queue(55, {"dist": "exponential", "mean": 1.0}, horizon_s=1_000), 3)
    alone = {"r": {"mean": 1.0, "p50": 0.69, "p95": 0.3, "p99": 4.6}}  # a p95 far below the measured one
    assert wide_tails(summaries)  # the case in which des run pays for the no-load pilot
    tail = [line for line in saturation(summaries, alone) if "p95 of r" in line]
    assert len(tail) == 1 and "times its no-load 0.3 s, and its interval is wide" in tail[0]


def npu_queue():
    """Calls hold memory while queued for one NPU slot; fetches hold memory on an uncontended network."""
    return parse_scenario({
        "name": "npu-queue", "horizon_s": 2_000, "warmup_s": 100,
        "resources": {"npu": {"capacity": 1, "per_tool_cap": 1, "max_active": 1},
                      "net": {"capacity": 100, "per_tool_cap": 0.1}, "mem": {"kind": "space", "capacity": 20}},
        "tools": {"fetch": {"work": {"net": 2}, "space": {"mem": 1}},
                  "call": {"work": {"npu": {"dist": "exponential", "mean": 1.0}}, "space": {"mem": 1}}},
        "request_types": {"r": {"rate_per_min": 36, "nodes": {"fetch": {"tool": "fetch"},
                                                              "call": {"tool": "call", "after": ["fetch"]}}}},
    })  # fmt: skip


def test_the_bottleneck_is_where_tools_wait_not_the_busiest_resource():
    scenario = npu_queue()
    agg = aggregate(local(scenario, 3))
    utilisation = {name: figures["utilisation"].mean for name, figures in agg.resources.items()}
    assert max(utilisation, key=utilisation.__getitem__) == "mem"
    waiting = waiting_by_resource(agg, scenario)
    assert max(waiting, key=waiting.__getitem__) == "npu" and waiting["net"] == pytest.approx(0.0, abs=0.01)
    text = bottleneck_text(agg, scenario)
    assert text.startswith("the waiting happens at npu") and "mem is the most used" in text


def test_sharing_counts_as_waiting_on_a_processor_shared_resource():
    # M/M/1-PS at rho = 0.5: one request in the system on average, half of it the work itself.
    scenario = one_queue(30, {"dist": "exponential", "mean": 1.0}, horizon_s=3_000)
    agg = aggregate(local(scenario, 2))
    assert waiting_by_resource(agg, scenario)["cpu"] == pytest.approx(0.5, abs=0.15)


def test_des_run_names_the_bottleneck_and_warns_on_stderr_only(tmp_path, capsys):
    from simfleet.producer.cli import main

    path = tmp_path / "memory.yaml"
    path.write_text(json.dumps(memory_limited(1.15 * 120).to_dict()))
    assert main(["des", "run", str(path), "--replications", "3", "--processes", "1", "--seed", "1"]) == 0
    printed = capsys.readouterr()
    assert "the waiting happens at mem" in printed.out and "warning" not in printed.out
    assert "warning: near saturation: the requests in the system kept growing" in printed.err
    assert main(["des", "run", str(path), "--replications", "3", "--processes", "1", "--seed", "1", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["stable"] is True and "near saturation" in printed.err


def test_waiting_for_memory_held_by_calls_queued_for_the_npu_points_at_the_npu():
    # npu_bottleneck: deep-research calls hold 1 of 3 GiB from admission while they queue for 2 NPU slots. More
    # tools wait for memory than for the NPU, yet des bottleneck measures the NPU as the step that helps.
    scenario = load_scenario(Path(__file__).resolve().parents[2] / "config" / "scenarios" / "npu_bottleneck.yaml")
    agg = aggregate(local(scenario, 2, seed=scenario.seed))
    waiting = waiting_by_resource(agg, scenario)
    assert waiting["memory"] > waiting["npu"] > 0.1
    text = bottleneck_text(agg, scenario)
    assert "memory is held by tools that themselves wait at npu" in text and text.endswith(
        "npu is the bottleneck candidate"
    )
    assert "the bottleneck candidate" in bottleneck_text(agg) and "wait at npu" not in bottleneck_text(agg)
