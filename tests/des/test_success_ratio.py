"""Success-ratio SLA terms: a floor (the ratio must stay at or above the threshold) wherever SLA terms are used.

The engine does not model failures yet, so the searches are driven here by fake evaluators: real summaries whose
success ratio is set by msgspec.structs.replace to a known function of the load (or the capacity).
"""

from __future__ import annotations

import json
import math
from functools import cache

import msgspec
import pytest

from simfleet.producer.bottleneck import Sensitivity, Watched, watched_metrics
from simfleet.producer.capacity import search_capacity
from simfleet.producer.cli import main
from simfleet.producer.confidence import Estimate, SlaTerm, check_term, decide, judge, parse_term
from simfleet.producer.rate_sweep import sla_rows
from simfleet.producer.report import sla_table
from simfleet.producer.sla import search_sla
from simfleet.shared.errors import ConfigError, ScenarioError
from simfleet.shared.messages.des import ReplicationSummary
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import parse_scenario
from tests.des.helpers import fork_join, one_queue

QUEUE = {
    "name": "one-queue",
    "horizon_s": 600.0,
    "resources": {"cpu": {"capacity": 1.0, "step": 1.0, "unit": "core-s"}},
    "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}}},
    "request_types": {"r": {"rate_per_min": 30, "nodes": {"job": {"tool": "job"}}}},
}


@cache
def real_summary() -> ReplicationSummary:
    """One real replication of a small queue: the figures the fakes start from."""
    return run_replications(one_queue(30, 1.0, horizon_s=300), replications=1, seed=1, processes=1)[0]


def with_ratio(ratio: float | None, *, stable: bool = True, failed: int = 1) -> ReplicationSummary:
    """The real summary with type r's success ratio (and its failed count) replaced."""
    base = real_summary()
    figures = msgspec.structs.replace(base.types["r"], success_ratio=ratio, failed=failed)
    return msgspec.structs.replace(base, types={**base.types, "r": figures}, stable=stable,
                                   unstable_reason=None if stable else "backlog")  # fmt: skip


# --- the term: text, words, JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["r:success_ratio>0.99", " r : success_ratio >= 0.99 ", "r:success_ratio>9.9e-1"])
def test_a_success_ratio_term_is_read_as_a_floor(text):
    term = parse_term(text, fork_join())
    assert term == SlaTerm("r", "success_ratio", 0.99)
    assert term.floor and term.op == ">"
    assert term.text == "r:success_ratio>0.99"
    assert term.describe() == "success ratio of r at least 0.99"
    assert term.to_dict() == {"request_type": "r", "metric": "success_ratio", "op": ">", "threshold": 0.99,
                              "threshold_s": None, "text": "r:success_ratio>0.99"}  # fmt: skip


def test_a_latency_term_keeps_its_ceiling_and_says_so():
    term = parse_term("r:p95<30", fork_join())
    assert not term.floor and term.op == "<" and term.threshold_s == 30.0
    assert term.to_dict()["op"] == "<" and term.to_dict()["threshold_s"] == 30.0


@pytest.mark.parametrize(
    ("text", "named"),
    [("r:success_ratio>1.5", "(0, 1]"), ("r:success_ratio>0", "(0, 1]"), ("r:success_ratio>-0.5", "(0, 1]"),
     ("r:success_ratio>abc", "(0, 1]"), ("r:success_ratio<0.9", "so write r:success_ratio>0.9"),
     ("r:success_ratio<=0.9", "is a floor"), ("r:p95>=3", "so write r:p95<3"),
     ("r:success_rate>0.9", "unknown metric 'success_rate'"), ("r:success_ratio>0.9s", "not seconds"),
     ("nope:success_ratio>0.9", "unknown request type 'nope'")],
)  # fmt: skip
def test_a_bad_success_ratio_term_is_refused_naming_the_flag_and_the_term(text, named):
    with pytest.raises(ConfigError, match="--sla") as caught:
        parse_term(text, fork_join())
    assert named in str(caught.value) and text.strip() in str(caught.value)


def test_a_built_term_is_checked_too():
    with pytest.raises(ConfigError, match=r"slas\[0\].*success ratio in \(0, 1\]"):
        check_term(SlaTerm("r", "success_ratio", 1.2), fork_join(), key="slas[0]")


# --- the decision ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "verdict"),
    [(Estimate(0.995, 0.003, 5), "pass"), (Estimate(0.993, 0.003, 5), "pass"), (Estimate(0.99, 0.0, 5), "pass"),
     (Estimate(0.991, 0.003, 5), "undecided"), (Estimate(0.988, 0.003, 5), "undecided"),
     (Estimate(0.985, 0.003, 5), "fail"), (Estimate(-math.inf, None, 5), "fail"),
     (Estimate(1.0, None, 1), "undecided")],
)  # fmt: skip
def test_a_floor_passes_on_its_lower_bound_and_fails_on_its_upper_bound(value, verdict):
    assert decide(value, 0.99, floor=True) == verdict
    assert SlaTerm("r", "success_ratio", 0.99).decide(value) == verdict


def test_the_same_interval_is_judged_the_other_way_by_a_ceiling():
    high = Estimate(0.995, 0.003, 5)
    assert decide(high, 0.99, floor=True) == "pass" and decide(high, 0.99) == "fail"


def test_a_replication_without_a_ratio_or_unstable_fails_the_term():
    term = SlaTerm("r", "success_ratio", 0.9)
    good = [with_ratio(0.97), with_ratio(0.98), with_ratio(0.975)]
    assert judge(good, [term]).verdict == "pass"
    nothing_finished = msgspec.structs.replace(real_summary().types["r"], success_ratio=None, completed=0, failed=0,
                                               timed_out=0)  # fmt: skip
    empty = msgspec.structs.replace(real_summary(), types={**real_summary().types, "r": nothing_finished})
    judged = judge([*good, empty], [term])
    assert judged.verdict == "fail" and judged.terms[0].reason == "no request finished"
    judged = judge([*good, with_ratio(0.99, stable=False)], [term])
    assert judged.verdict == "fail" and judged.terms[0].reason == "unstable"
    assert judged.terms[0].to_dict()["mean"] is None and judged.terms[0].to_dict()["op"] == ">"


def test_a_summary_that_counts_outcomes_without_the_ratio_gives_the_ratio_of_its_counts():
    figures = msgspec.structs.replace(real_summary().types["r"], success_ratio=None, completed=90, failed=6,
                                      timed_out=4)  # fmt: skip
    summary = msgspec.structs.replace(real_summary(), types={"r": figures})
    assert SlaTerm("r", "success_ratio", 0.9).value(summary) == pytest.approx(0.9)


def test_badness_grows_with_load_for_both_kinds_and_is_1_at_the_threshold():
    floor, ceiling = SlaTerm("r", "success_ratio", 0.9), SlaTerm("r", "p95", 10.0)
    assert floor.badness(0.9) == pytest.approx(1.0) and ceiling.badness(10.0) == pytest.approx(1.0)
    assert floor.badness(0.8) > floor.badness(0.9) > floor.badness(1.0)  # the ratio falls as load rises
    assert ceiling.badness(12.0) > ceiling.badness(10.0) > ceiling.badness(8.0)
    assert floor.badness(0.0) == math.inf and floor.badness(-math.inf) == math.inf


def test_the_binding_term_is_the_one_nearest_to_breaking_whichever_its_direction():
    latency, ratio = SlaTerm("r", "mean", 1_000.0), SlaTerm("r", "success_ratio", 0.96)
    judged = judge([with_ratio(0.97), with_ratio(0.975), with_ratio(0.972)], [latency, ratio])
    assert judged.verdict == "pass" and judged.binding.term == ratio
    assert 0 < judged.binding.margin < 0.02


# --- the rate search ---------------------------------------------------------------------------------------------

CROSSING_PER_MIN = 36.0
"""Where the fake's success ratio, 1 − 0.05 × rate / 60, crosses the threshold 0.97."""


def falling_ratio(scenario, replications, seed, first=0):
    """A success ratio that falls as the rate rises, with a little noise by replication index."""
    rate = scenario.request_types["r"].rate_per_min
    return [with_ratio(1.0 - 0.05 * rate / 60.0 + 0.0005 * ((i % 3) - 1)) for i in range(first, first + replications)]


def test_the_search_finds_the_largest_rate_whose_success_ratio_stays_above_the_floor():
    result = search_sla(one_queue(30, 1.0, horizon_s=300), falling_ratio, slas=["r:success_ratio>0.97"],
                        replications=3, seed=1, rel_tol=0.02)  # fmt: skip
    assert result.converged
    lo, hi = result.best_passing, result.first_failing
    assert lo.rate_per_min <= CROSSING_PER_MIN <= hi.rate_per_min
    assert (hi.rate_per_min - lo.rate_per_min) / lo.rate_per_min <= 0.05
    assert lo.binding.value.low >= 0.97 > hi.binding.value.high, "both ends decided with 95% confidence"
    for probe in result.probes:  # every probe below the crossing passes, every one above fails
        if probe.verdict != "undecided":
            assert (probe.verdict == "pass") == (probe.rate_per_min < CROSSING_PER_MIN), probe
    data = result.to_dict()
    assert data["op"] == ">" and data["threshold"] == 0.97 and data["threshold_s"] is None
    assert data["best_passing"]["op"] == ">" and data["terms"][0]["text"] == "r:success_ratio>0.97"
    assert result.statement().startswith(f"success ratio of r stays at least 0.97 up to {lo.rate_per_min:.4g}")
    assert not any("no rate can meet" in w or "failed or timed out" in w for w in result.warnings), result.warnings
    assert "success ratio of r" in sla_table(result) and "ratio, mean ±95%" in sla_table(result)
    row = sla_rows(result)[0]
    assert row["r_success_ratio_op"] == ">" and row["r_success_ratio_threshold"] == 0.97
    assert "r_success_ratio_s" not in row


def test_a_term_given_as_an_object_scales_the_whole_mix_too():
    result = search_sla(one_queue(30, 1.0, horizon_s=300), falling_ratio, scale="mix", seed=1, rel_tol=0.02,
                        replications=3, slas=[SlaTerm("r", "success_ratio", 0.97)])  # fmt: skip
    assert result.scale == "mix"
    assert result.best_passing.rate_per_min <= CROSSING_PER_MIN <= result.first_failing.rate_per_min


def test_the_single_term_arguments_take_a_ratio_for_success_ratio():
    result = search_sla(one_queue(30, 1.0, horizon_s=300), falling_ratio, request_type="r", metric="success_ratio",
                        threshold_s=0.97, replications=3, seed=1, rel_tol=0.05)  # fmt: skip
    assert result.best_passing.rate_per_min <= CROSSING_PER_MIN <= result.first_failing.rate_per_min
    with pytest.raises(ConfigError, match=r"threshold_s.*\(0, 1\]"):
        search_sla(one_queue(30, 1.0), falling_ratio, request_type="r", metric="success_ratio", threshold_s=2.0)


# --- the capacity search and the bottleneck study ----------------------------------------------------------------


def rising_with_capacity(scenario, replications, seed, first=0):
    """A success ratio that rises with the capacity of cpu: 0.8 + 0.05 x capacity, at most 1."""
    ratio = min(1.0, 0.8 + 0.05 * scenario.resources["cpu"].capacity)
    return [with_ratio(ratio + 0.001 * ((i % 3) - 1)) for i in range(first, first + replications)]


def test_the_capacity_search_finds_the_smallest_capacity_meeting_the_floor():
    result = search_capacity(parse_scenario(QUEUE), rising_with_capacity, slas=["r:success_ratio>0.97"],
                             replications=3, seed=1)  # fmt: skip
    assert result.answer is not None and result.answer.capacities["cpu"] == 4.0  # 0.8 + 0.05 x 4 = 1.0 > 0.97
    assert result.below is not None and result.below.verdict == "fail"  # 3: 0.95
    assert "meets success ratio of r at least 0.97" in result.statement()
    assert result.to_dict()["terms"][0]["op"] == ">"


def test_the_sla_block_takes_a_success_ratio_floor():
    data = {**QUEUE, "sla": {"request_type": "r", "metric": "success_ratio", "threshold": 0.97}}
    scenario = parse_scenario(data, "q.yaml")
    assert scenario.sla.floor and scenario.sla.threshold == 0.97
    assert parse_scenario(scenario.to_dict()).sla == scenario.sla, "the scenario travels to workers as its dict"
    result = search_capacity(scenario, rising_with_capacity, replications=3, seed=1)
    assert [t.text for t in result.terms] == ["r:success_ratio>0.97"] and result.answer.capacities["cpu"] == 4.0
    assert watched_metrics(scenario, None) == [Watched("r", "success_ratio", 0.97)]


@pytest.mark.parametrize(
    ("sla", "key", "named"),
    [({"metric": "success_ratio", "threshold": 1.5}, "sla.threshold", "at most 1"),
     ({"metric": "success_ratio", "threshold": 0}, "sla.threshold", "> 0"),
     ({"metric": "success_ratio"}, "sla.threshold", "required"),
     ({"metric": "success_ratio", "threshold_s": 0.99}, "sla.threshold_s", "not seconds"),
     ({"metric": "p95", "threshold_s": 5, "threshold": 5}, "sla.threshold", "not both"),
     ({"metric": "success_rate", "threshold": 0.9}, "sla.metric", "success_ratio")],
)  # fmt: skip
def test_a_bad_success_ratio_sla_block_names_its_key(sla, key, named):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario({**QUEUE, "sla": {"request_type": "r", **sla}}, "q.yaml")
    assert caught.value.key == key and named in str(caught.value) and "q.yaml" in str(caught.value)


def test_a_latency_sla_block_keeps_threshold_s():
    scenario = parse_scenario({**QUEUE, "sla": {"request_type": "r", "metric": "p95", "threshold_s": 5}})
    assert not scenario.sla.floor and scenario.sla.threshold_s == 5.0
    assert parse_scenario(scenario.to_dict()).sla == scenario.sla


def test_a_step_that_raises_the_success_ratio_is_an_improvement():
    watched = Watched("r", "success_ratio", 0.9)
    assert watched.text == "r:success_ratio>0.9" and watched.to_dict()["op"] == ">"
    up = Sensitivity(watched, Estimate(0.85, 0.01, 5), Estimate(0.95, 0.01, 5), Estimate(0.1, 0.01, 5))
    down = Sensitivity(watched, Estimate(0.95, 0.01, 5), Estimate(0.85, 0.01, 5), Estimate(-0.1, 0.01, 5))
    assert up.improvement == pytest.approx(0.1 / 0.9) and down.improvement == 0.0


# --- the command line --------------------------------------------------------------------------------------------


def test_des_sla_accepts_a_success_ratio_term_and_says_no_failures_are_modelled(tmp_path, capsys):
    path = tmp_path / "q.yaml"
    path.write_text(json.dumps(QUEUE))  # JSON is YAML
    code = main(["des", "sla", str(path), "--sla", "r:success_ratio>0.9", "--replications", "2", "--processes", "1",
                 "--json"])  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    assert answer["terms"][0]["text"] == "r:success_ratio>0.9" and answer["op"] == ">"
    # No failure is modelled: the ratio is 1 at every stable rate, so no probed rate fails and the search says so.
    assert code == 1 and not answer["converged"] and answer["first_failing"] is None
    assert answer["best_passing"]["metric_s"] == 1.0 and answer["best_passing"]["verdict"] == "pass"
    assert any("models no failures" in w for w in answer["warnings"]), answer["warnings"]


@pytest.mark.parametrize("term", ["r:success_ratio>2", "r:success_ratio<0.9", "r:success_ratio>"])
def test_des_sla_refuses_a_malformed_success_ratio_term_naming_the_flag(tmp_path, capsys, term):
    path = tmp_path / "q.yaml"
    path.write_text(json.dumps(QUEUE))
    code = main(["des", "sla", str(path), "--sla", term])
    err = capsys.readouterr().err
    assert code == 2 and "--sla" in err, err


def test_des_sla_single_term_flags_check_a_success_ratio_threshold(tmp_path, capsys):
    path = tmp_path / "q.yaml"
    path.write_text(json.dumps(QUEUE))
    code = main(["des", "sla", str(path), "--request-type", "r", "--metric", "success_ratio", "--threshold", "1.5"])
    err = capsys.readouterr().err
    assert code == 2 and "--threshold" in err and "(0, 1]" in err, err
