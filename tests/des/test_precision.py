"""Forward runs to a precision: replications in rounds until every reported figure's interval is narrow enough."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from scipy import stats

from simfleet.producer.cli import main
from simfleet.producer.precision import FigurePrecision, figures, next_total, run_to_precision
from simfleet.shared.errors import ConfigError
from simfleet.shared.messages import to_wire
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.runner import run_replications
from tests.des.helpers import one_queue

# M/M/1-PS at rho 0.5, 1,000 s of arrivals: about 500 requests and a few milliseconds a replication.
SCENARIO = one_queue(30, {"dist": "exponential", "mean": 1.0}, horizon_s=1_000)


def local(scenario, replications, seed, first=0):
    return run_replications(scenario, replications=first + replications, seed=seed, processes=1, first=first)


def without_run(result) -> dict:
    """The aggregate without its wall-clock block."""
    return {k: v for k, v in to_wire(result).items() if k != "run"}


def test_a_loose_precision_is_reached_in_rounds_of_consecutive_replications_equal_to_one_run():
    asked = []

    def evaluate(scenario, replications, seed, first=0):
        asked.append((first, replications))
        return local(scenario, replications, seed, first)

    result = run_to_precision(SCENARIO, evaluate, precision=0.1, seed=4, initial=2, cap=100)
    n = result.replications
    assert result.reached and not result.unstable and 2 < n < 100
    assert result.rounds == [count for _, count in asked] and sum(result.rounds) == n and len(result.rounds) >= 2
    assert [first for first, _ in asked] == [sum(result.rounds[:i]) for i in range(len(result.rounds))]
    assert [s.replication for s in result.summaries] == list(range(n))
    for figure in figures(result.aggregate):
        assert figure.ci95 is not None and figure.value is not None and figure.ci95 <= 0.1 * abs(figure.value)
    assert result.widest is not None and result.widest.relative == max(f.relative for f in figures(result.aggregate))
    assert without_run(result.aggregate) == without_run(aggregate(local(SCENARIO, n, 4)))
    assert result.message() == (f"precision 10% reached after {n} replications in {len(result.rounds)} rounds "
                                f"(widest: {result.widest.label}, ±{100 * result.widest.relative:.2g}%)")  # fmt: skip


def test_the_next_round_aims_at_the_count_whose_student_t_interval_meets_the_target():
    # s = 0.1 around 1 and a 5% target: t(n-1)·0.1/√n ≤ 0.05 first holds at n = 18; 10% to spare makes 20.
    widest = FigurePrecision("r", "p99_s", 1.0, None, 0.1, 10)
    assert next_total(widest, 10, 0.05, 200) == 20
    assert stats.t.ppf(0.975, 17) * 0.1 / math.sqrt(18) <= 0.05 < stats.t.ppf(0.975, 16) * 0.1 / math.sqrt(17)
    # From 2 replications no round more than quadruples the count, and none passes the cap.
    assert next_total(FigurePrecision("r", "p99_s", 1.0, None, 0.5, 2), 2, 0.01, 200) == 8
    assert next_total(widest, 10, 0.05, 14) == 14


def test_a_figure_of_zero_or_missing_has_no_relative_precision():
    assert FigurePrecision("r", "throughput_per_min", 0.0, 0.0, 0.0, 3).skip_reason == "its value is 0"
    missing = FigurePrecision("r", "p95_s", None, None, None, 0)
    assert missing.relative is None and missing.skip_reason == "no request completed"


def test_an_unstable_system_stops_after_the_first_round_and_says_so():
    overloaded = one_queue(120, {"dist": "exponential", "mean": 1.0}, horizon_s=200)
    result = run_to_precision(overloaded, local, precision=0.05, seed=1, initial=2, cap=50)
    assert result.unstable and not result.reached and result.rounds == [2]
    assert "unstable at this load" in result.message()


@pytest.mark.parametrize(
    ("arguments", "key"),
    [({"precision": 0}, "precision"), ({"precision": 1.5}, "precision"), ({"precision": "2%"}, "precision"),
     ({"initial": 1}, "initial"), ({"cap": 2, "initial": 3}, "cap"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_the_library_refuses_a_bad_argument_by_name_before_running(arguments, key):
    def evaluate(*_):
        raise AssertionError("nothing may run")

    options = {"precision": 0.05, "seed": 1, "initial": 2, "cap": 10, **arguments}
    with pytest.raises(ConfigError) as caught:
        run_to_precision(SCENARIO, evaluate, **options)
    assert caught.value.key == key


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "one-queue.yaml"
    path.write_text(yaml.safe_dump(SCENARIO.to_dict()))
    return str(path)


def test_des_run_precision_prints_the_count_it_needed_and_wraps_the_json(scenario_file, tmp_path, capsys):
    trace = tmp_path / "trace.txt"
    command = ["des", "run", scenario_file, "--precision", "0.1", "--replications", "2", "--processes", "1"]
    assert main([*command, "--trace", str(trace)]) == 0
    captured = capsys.readouterr()
    result = run_to_precision(SCENARIO, local, precision=0.1, seed=SCENARIO.seed, initial=2, cap=200)
    assert captured.out.rstrip().endswith(result.message())
    assert f"{result.replications} replications, seed" in captured.out
    more = result.rounds[1]
    assert (
        f"round 2: {more} more replications (2 to {more + 1}): " in captured.err and ", the target 10%" in captured.err
    )
    assert trace.read_text().startswith("0") and " arrive r req=0" in trace.read_text()  # replication 0's trace
    assert main(["des", "run", scenario_file, "--precision", "10%", "--replications", "2", "--processes", "1",
                 "--json"]) == 0  # fmt: skip
    shown = json.loads(capsys.readouterr().out)
    assert shown["aggregate"]["replications"] == result.replications == shown["precision"]["replications"]
    assert shown["precision"]["reached"] and shown["precision"]["rounds"] == result.rounds


def test_des_run_precision_not_reached_at_the_cap_exits_1_after_the_figures(scenario_file, capsys):
    assert main(["des", "run", scenario_file, "--precision", "0.1%", "--replications", "2", "--max-replications",
                 "3", "--processes", "1"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "scenario one-queue: 3 replications" in out
    assert "precision 0.1% not reached at the cap of 3 replications: " in out.splitlines()[-1]


@pytest.mark.parametrize("value", ["0", "150%", "abc", "=-1%", "1", "nan%"])
def test_a_bad_precision_is_refused_naming_the_flag(scenario_file, value, capsys):
    flag = ["--precision" + value] if value.startswith("=") else ["--precision", value]
    with pytest.raises(SystemExit) as exited:
        main(["des", "run", scenario_file, *flag])
    assert exited.value.code == 2 and "argument --precision:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "named"),
    [(["--max-replications", "5"], "--max-replications: applies only with --precision"),
     (["--precision", "2%", "--replications", "1"], "--replications: must be at least 2"),
     (["--precision", "2%", "--replications", "6", "--max-replications", "5"], "--max-replications: must be at least"),
     (["--precision", "2%", "--fleet", "--trace", "t.txt"], "--trace: the trace is written by a local run")],
)  # fmt: skip
def test_counts_that_do_not_fit_a_precision_run_are_refused_by_flag(scenario_file, arguments, named, capsys):
    assert main(["des", "run", scenario_file, *arguments]) == 2
    assert named in capsys.readouterr().err
