import csv
import json
import math

import pytest
import yaml

from simfleet.producer.capacity import lower_steps, search_capacity
from simfleet.producer.cli import main
from simfleet.shared.errors import ConfigError
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import parse_scenario


def local(scenario, replications, seed, first=0):
    return run_replications(scenario, replications=first + replications, seed=seed, processes=1, first=first)


def mmc(rate_per_min, horizon_s=1_000.0, servers=8):
    """An M/M/c station: exponential work of mean 1 on servers of rate 1 (per_tool_cap), c = max_active = capacity."""
    return parse_scenario({
        "name": "mmc", "horizon_s": horizon_s,
        "resources": {"cpu": {"capacity": float(servers), "per_tool_cap": 1.0, "max_active": servers, "step": 1.0,
                              "unit": "core-s"}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}}},
        "request_types": {"r": {"rate_per_min": rate_per_min, "nodes": {"job": {"tool": "job"}}}},
    })  # fmt: skip


def erlang_c_mean(arrival_per_s, servers):
    """Mean sojourn time of M/M/c with service rate 1: 1 + C(c, a) / (c - a)."""
    a = arrival_per_s
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    waiting = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return 1.0 + waiting / (servers - a)


def spaced(stages, rate_per_min=6.0, horizon_s=100.0):
    """Deterministic arrivals far enough apart that no two requests overlap on a resource: latency = sum of w / C.

    ``stages`` maps a resource name to its work per request (one tool per resource, in a chain).
    """
    names = list(stages)
    nodes = {
        f"t_{n}": {"tool": f"t_{n}", **({"after": [f"t_{names[i - 1]}"]} if i else {})} for i, n in enumerate(names)
    }
    return parse_scenario({
        "name": "spaced", "horizon_s": horizon_s,
        "resources": {n: {"capacity": 50.0, "step": 1.0, "unit": "core-s"} for n in names},
        "tools": {f"t_{n}": {"work": {n: w}} for n, w in stages.items()},
        "request_types": {"r": {"rate_per_min": rate_per_min, "arrival": "deterministic",
                                "nodes": nodes}},
    })  # fmt: skip


def test_mmc_search_returns_the_smallest_c_whose_erlang_c_mean_meets_the_sla():
    arrival_per_s, threshold_s = 1.5, 1.5
    theory = {c: erlang_c_mean(arrival_per_s, c) for c in range(2, 8)}
    expected = min(c for c, mean in theory.items() if mean <= threshold_s)
    assert theory[expected - 1] > 1.3 * threshold_s and theory[expected] < 0.85 * threshold_s  # statistics can decide
    result = search_capacity(mmc(arrival_per_s * 60), local, slas=[f"r:mean<{threshold_s}"], replications=4, seed=3)
    assert result.converged
    assert result.answer.steps == {"cpu": expected} and result.answer.capacities == {"cpu": float(expected)}
    assert result.below.steps == {"cpu": expected - 1} and result.below.verdict == "fail"
    assert result.lower == {"cpu": 2}  # 1 server cannot carry 1.5 requests/s of unit work
    measured = result.answer.terms[0].value
    assert abs(measured.mean - theory[expected]) < max(measured.ci95, 0.03 * theory[expected])
    assert "cpu 3 core-s/s (3 steps)" in result.statement() and "2 core-s/s does not" in result.statement()


def test_one_resource_steps_up_by_growing_increments_then_bisects_to_the_smallest_passing_capacity():
    # latency = 10 / C exactly; mean < 0.95 s needs C >= 10.53; the lower limit is 2 (offered work 1 per second)
    result = search_capacity(spaced({"a": 10.0}), local, slas=["r:mean<0.95"], replications=2)
    assert [p.steps["a"] for p in result.probes] == [2, 3, 5, 9, 17, 13, 11, 10]
    assert result.answer.steps == {"a": 11} and result.below.steps == {"a": 10}
    assert result.answer.terms[0].value.mean == pytest.approx(10 / 11)


def test_no_capacity_within_max_steps_is_no_answer():
    result = search_capacity(spaced({"a": 10.0}), local, slas=["r:mean<0.5"], replications=2, max_steps=5)
    assert result.answer is None and not result.converged and result.stop == "max_steps"
    assert [p.steps["a"] for p in result.probes] == [2, 3, 5, 7]
    assert "within 5 steps" in result.statement()


def test_two_resources_with_costs_give_the_cheapest_passing_combination():
    # latency = 10 / a + 5 / b; the cheapest with a cost of 1 per a and 2 per b: (6, 4) and (8, 3) both cost 14, and
    # the tie goes to fewer steps
    scenario = spaced({"a": 10.0, "b": 5.0})
    result = search_capacity(scenario, local, slas=["r:mean<3"], costs={"a": 1.0, "b": 2.0}, replications=2,
                             max_probes=100)  # fmt: skip
    grid = [(a, b) for a in range(2, 35) for b in range(1, 34)]
    best = min(a + 2 * b for a, b in grid if 10 / a + 5 / b <= 3)
    assert result.answer.steps == {"a": 6, "b": 4} and result.answer.cost == best == 14
    probed = {(p.steps["a"], p.steps["b"]): p for p in result.probes}
    failed = [point for point, p in probed.items() if not p.passed]
    for a, b in grid:
        if a + 2 * b < best:
            assert (a, b) in failed or any(a <= x and b <= y for x, y in failed), (a, b)
    # each floor is the least of one resource with the other at the top of the grid (a: 34 steps, b: 33)
    assert result.floor == {"a": min(a for a in range(2, 35) if 10 / a + 5 / 33 <= 3),
                            "b": min(b for b in range(1, 34) if 10 / 34 + 5 / b <= 3)} == {"a": 4, "b": 2}  # fmt: skip
    by_cost = [p.cost for p in result.probes if p.steps["a"] < 34 and p.steps["b"] < 33]
    assert by_cost[-1] == 14 and by_cost == sorted(by_cost)
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["answer"]["steps"] == {"a": 6, "b": 4}


def test_a_search_stopped_by_max_probes_has_no_answer():
    result = search_capacity(spaced({"a": 10.0, "b": 5.0}), local, slas=["r:mean<3"], replications=2, max_probes=6)
    assert result.answer is None and result.stop == "max_probes" and len(result.probes) == 6


def test_lower_limits_come_from_the_load_and_the_largest_space_demand():
    scenario = parse_scenario({
        "name": "limits", "horizon_s": 10.0,
        "resources": {"cpu": {"capacity": 8.0, "per_tool_cap": 0.5, "max_active": 16, "step": 0.5},
                      "mem": {"kind": "space", "capacity": 64, "step": 8}},
        "tools": {"t": {"work": {"cpu": 2.0}, "space": {"mem": 17}}},
        "request_types": {"r": {"rate_per_min": 90, "nodes": {"t": {"tool": "t"}}}},
    })  # fmt: skip
    assert lower_steps(scenario, "cpu") == 7  # offered 3 work units/s: 6 servers of 0.5 give exactly 3, not more
    assert lower_steps(scenario, "mem") == 3  # 24 GiB holds a demand of 17


def bad(**changes):
    data = spaced({"a": 10.0, "b": 5.0}).to_dict()
    data["resources"]["c"] = {"capacity": 1.0}
    data.update(changes)
    return parse_scenario(data)


@pytest.mark.parametrize(
    ("options", "key"),
    [({"resources": ["gpu"]}, "resources"), ({"resources": ["c"]}, "resources.c.step"),
     ({"costs": {"a": -1.0}}, "costs.a"), ({"costs": {"a": 0.0}}, "costs.a"), ({"costs": {"a": math.nan}}, "costs.a"),
     ({"resources": ["a"], "costs": {"b": 1.0}}, "costs.b"), ({"slas": ["gpu:p95<3"]}, "slas[0]"),
     ({"slas": ["r:p42<3"]}, "slas[0]"), ({"max_steps": 0}, "max_steps"), ({"slas": None}, "slas")],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name_before_any_candidate_runs(options, key):
    def never(*_):
        raise AssertionError("a candidate ran")

    with pytest.raises(ConfigError) as refused:
        search_capacity(bad(), never, **{"slas": ["r:mean<3"], **options})
    assert refused.value.key.split(" ")[0] == key


def write(tmp_path, scenario):
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario.to_dict()))
    return str(path)


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--resource", "gpu"], "--resource"), (["--resource", "c"], "resources.c.step"),
     (["--cost", "a=-1"], "--cost a"), (["--cost", "a=nan"], "--cost a"), (["--cost", "a"], "--cost"),
     (["--resource", "a", "--cost", "b=2"], "--cost b"), (["--sla", "gpu:p95<3"], "--sla"),
     (["--sla", "r:p42<3"], "--sla"), (["--max-steps", "0"], "--max-steps"), ([], "--sla")],
)  # fmt: skip
def test_the_command_refuses_bad_flags_naming_them(tmp_path, capsys, flags, named):
    sla = [] if not flags or "--sla" in flags else ["--sla", "r:mean<3"]
    try:
        code = main(["des", "capacity", write(tmp_path, bad()), *sla, *flags])
    except SystemExit as exit:  # argparse refuses a flag's form itself
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Traceback" not in err


def test_the_command_prints_every_probe_as_json_and_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["des", "capacity", write(tmp_path, spaced({"a": 10.0})), "--sla", "r:mean<0.95", "--replications", "2"]
    assert main([*args, "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["steps"]["a"] for p in result["probes"]] == [2, 3, 5, 9, 17, 13, 11, 10]
    assert result["answer"]["capacities"] == {"a": 11.0} and result["converged"]
    assert sorted(p.name for p in out.iterdir()) == ["capacity.json", "capacity_search.png", "probes.csv"]
    rows = list(csv.DictReader((out / "probes.csv").open()))
    assert [row["a_capacity (core-s/s)"] for row in rows] == ["2.0", "3.0", "5.0", "9.0", "17.0", "13.0", "11.0",
                                                               "10.0"]  # fmt: skip
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "core-s/s" in table and "a 11 core-s/s (11 steps)" in table and "10 core-s/s does not" in table


def test_the_command_without_an_answer_exits_1_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    scenario = write(tmp_path, spaced({"a": 10.0}))
    code = main(["des", "capacity", scenario, "--sla", "r:mean<0.5", "--replications", "2", "--max-steps", "5",
                 "--out", str(out)])  # fmt: skip
    assert code == 1 and not out.exists()
    captured = capsys.readouterr()
    assert "no probed capacity met" in captured.out and "not written" in captured.err
