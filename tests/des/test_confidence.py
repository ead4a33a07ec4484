"""The statistical decision every search makes, the SLA terms it judges, and the common random numbers it uses."""

from __future__ import annotations

import math

import pytest

from simfleet.producer.confidence import Estimate, Precision, SlaTerm, decide, judge_candidate, parse_term
from simfleet.shared.errors import ConfigError
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import parse_scenario
from tests.des.helpers import fork_join, one_queue


def local(scenario, replications, seed, first=0):
    return run_replications(scenario, replications=first + replications, seed=seed, processes=1, first=first)


@pytest.mark.parametrize(
    ("value", "verdict"),
    [(Estimate(9.0, 0.5, 5), "pass"), (Estimate(9.5, 0.5, 5), "pass"), (Estimate(9.8, 0.5, 5), "undecided"),
     (Estimate(10.6, 0.5, 5), "fail"), (Estimate(math.inf, None, 5), "fail"), (Estimate(1.0, None, 1), "undecided")],
)  # fmt: skip
def test_a_term_passes_on_its_upper_bound_and_fails_on_its_lower_bound(value, verdict):
    assert decide(value, 10.0) == verdict


def test_terms_are_read_as_the_command_line_writes_them():
    scenario = fork_join()
    assert parse_term("r:p95<30", scenario) == SlaTerm("r", "p95", 30.0)
    assert parse_term(" q : mean <= 2.5s ", scenario) == SlaTerm("q", "mean", 2.5)
    assert parse_term("r:p99<1e-1", scenario).text == "r:p99<0.1"


@pytest.mark.parametrize(
    ("text", "named"),
    [("nope:p95<3", "unknown request type 'nope'"), ("r:p90<3", "unknown metric 'p90'"), ("r:p95<0", "above 0"),
     ("r:p95<abc", "above 0"), ("x p95 30", "not an SLA term"), ("r:success_ratio<1", "so write r:success_ratio>1"),
     ("r:p95>3", "so write r:p95<3")],
)  # fmt: skip
def test_a_bad_term_is_refused_naming_the_flag_and_the_term(text, named):
    with pytest.raises(ConfigError, match="--sla") as caught:
        parse_term(text, fork_join())
    assert named in str(caught.value)


def test_an_undecided_candidate_gets_the_next_replications_and_is_capped():
    # M/M/1-PS, mean work 1 s, at 0.75/s: mean latency about 4 s. A threshold at the mean of 12 replications
    # leaves the interval of 12 straddling it, so the candidate ends undecided at the cap.
    scenario = one_queue(45, {"dist": "exponential", "mean": 1.0}, horizon_s=2_000)
    at_cap = SlaTerm("r", "mean", 1.0).value
    threshold = sum(at_cap(s) for s in local(scenario, 12, 3)) / 12
    asked = []

    def evaluate(probe, replications, seed, first=0):
        asked.append((first, replications))
        return local(probe, replications, seed, first)

    judged = judge_candidate(evaluate, scenario, 3, [SlaTerm("r", "mean", threshold)], Precision(initial=3, cap=12))
    assert judged.capped and judged.verdict == "undecided"
    assert [s.replication for s in judged.summaries] == list(range(12))
    assert asked[0] == (0, 3) and sum(n for _, n in asked) == 12
    assert all(first == sum(n for _, n in asked[:i]) for i, (first, _) in enumerate(asked))
    clear = judge_candidate(evaluate, scenario, 3, [SlaTerm("r", "mean", 40.0)], Precision(initial=3, cap=12))
    assert clear.verdict == "pass" and clear.replications == 3


def test_precision_needs_two_replications_and_a_cap_above_them():
    with pytest.raises(ConfigError, match="replications"):
        Precision(initial=1)
    with pytest.raises(ConfigError, match="max_replications"):
        Precision(initial=5, cap=4)


def test_capacity_steps_scale_max_active_with_the_capacity():
    scenario = parse_scenario({
        "name": "mmc", "horizon_s": 100,
        "resources": {"npu": {"capacity": 4, "per_tool_cap": 1, "max_active": 4, "step": 1},
                      "mem": {"kind": "space", "capacity": 8, "step": 2}},
        "tools": {"t": {"work": {"npu": 1}, "space": {"mem": 3}}},
        "request_types": {"r": {"rate_per_min": 60, "nodes": {"a": {"tool": "t"}}}},
    })  # fmt: skip
    bigger = scenario.with_capacity("npu", 6)
    assert (bigger.resources["npu"].capacity, bigger.resources["npu"].max_active) == (6, 6)
    assert parse_scenario(bigger.to_dict()).resources["npu"].step == 1
    with pytest.raises(Exception, match=r"resources\.mem\.capacity"):
        scenario.with_capacity("mem", 2)
