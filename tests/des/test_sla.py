import json
from pathlib import Path

import pytest

from simfleet.producer.cli import main
from simfleet.producer.sla import search_sla
from simfleet.worker.des.runner import run_replications

from .helpers import one_queue

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def local(scenario, replications, seed):
    return run_replications(scenario, replications=replications, seed=seed, processes=1)


def test_search_brackets_the_theoretical_answer_of_mm1_ps():
    # M/M/1-PS with mean work 1 s: mean latency 1/(1 - λ), below 4 s up to λ = 0.75/s = 45/min.
    scenario = one_queue(30, {"dist": "exponential", "mean": 1.0}, horizon_s=20_000)
    seeds = []

    def evaluate(probe, replications, seed):
        seeds.append(seed)
        return local(probe, replications, seed)

    result = search_sla(scenario, evaluate, request_type="r", metric="mean", threshold_s=4.0, replications=4, seed=9)
    assert result.converged
    assert len(result.probes) <= 8
    assert set(seeds) == {9}
    lo, hi = result.best_passing, result.first_failing
    assert lo.metric_s <= 4.0 < hi.metric_s
    assert (hi.rate_per_min - lo.rate_per_min) / lo.rate_per_min <= 0.01
    assert lo.rate_per_min == pytest.approx(45.0, rel=0.05)
    assert result.capacity_bound_per_min == pytest.approx(60.0)


def sla_cli(capsys, *args):
    code = main(["des", "sla", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_deep_research_sla_reaches_a_one_percent_bracket_in_at_most_eight_probes(capsys):
    code, answer = sla_cli(capsys, str(SCENARIOS / "deep_research_sla.yaml"))
    assert code == 0
    assert answer["converged"] and answer["bracket_rel_width"] <= 0.01
    assert len(answer["probes"]) <= 8
    assert answer["best_passing"]["metric_s"] < 30 <= answer["first_failing"]["metric_s"]
    for probe in answer["probes"]:
        assert set(probe) == {"rate_per_min", "metric_s", "ci95_s", "passed", "stable", "reason"}
    passing = [p["rate_per_min"] for p in answer["probes"] if p["passed"]]
    assert max(passing) == answer["best_passing"]["rate_per_min"]


@pytest.mark.parametrize(
    ("scenario", "args"),
    [
        ("web_search_load_test.yaml", ["--request-type", "web-search", "--metric", "p95", "--threshold", "10"]),
        ("mixed_workload.yaml", ["--request-type", "deep-research", "--threshold", "30", "--mix"]),
    ],
)
def test_other_example_scenarios_converge_within_eight_probes(capsys, scenario, args):
    code, answer = sla_cli(capsys, str(SCENARIOS / scenario), *args, "--replications", "3")
    assert code == 0
    assert answer["converged"] and len(answer["probes"]) <= 8
