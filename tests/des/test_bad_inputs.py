"""Bad input to the ``des`` commands: every one ends in exit 2 with the file and the key or flag named, within
seconds, without a traceback, and leaves no output that looks finished (issue 12)."""

from __future__ import annotations

import copy
import dataclasses
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from simfleet.producer.cli import main
from simfleet.shared.errors import ConfigError, ScenarioError, SimulationError
from simfleet.worker.des import runner
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.limits import MAX_DEPTH, MAX_EMPIRICAL_VALUES, MAX_FILE_BYTES, MAX_NODES_PER_TYPE
from simfleet.worker.des.scenario import load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"

BASE: dict[str, Any] = {
    "name": "small",
    "horizon_s": 200.0,
    "replications": 2,
    "resources": {"cpu": {"capacity": 1.0}, "mem": {"kind": "space", "capacity": 4.0}},
    "tools": {
        "a": {"work": {"cpu": {"dist": "exponential", "mean": 0.5}}, "space": {"mem": 1.0}},
        "b": {"work": {"cpu": {"dist": "empirical", "values": [0.1, 0.2, 0.3]}}},
    },
    "request_types": {
        "r": {"rate_per_min": 30.0, "weight": 1.0, "nodes": {"a": {"tool": "a"}, "b": {"tool": "b", "after": ["a"]}}}
    },
}


def scenario_file(tmp_path: Path, changes: dict[str, Any] | None = None, name: str = "bad.yaml") -> Path:
    """BASE with ``changes`` applied (dotted key -> value), written as YAML."""
    data = copy.deepcopy(BASE)
    for dotted, value in (changes or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, default_flow_style=None))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    started = time.monotonic()
    code = main(list(argv))
    assert time.monotonic() - started < 30
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    return code, out, err


def strict_json(text: str) -> Any:
    """Parse JSON as strict JSON: ``Infinity`` and ``NaN`` are refused."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------------------------ 1. numbers


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("resources.cpu.capacity", 5e-324),
        ("resources.cpu.capacity", 10**400),
        ("resources.cpu.capacity", float("inf")),
        ("resources.mem.capacity", float("nan")),
        ("request_types.r.weight", 1e308),
        ("request_types.r.rate_per_min", float("nan")),
        ("horizon_s", float("inf")),
        ("horizon_s", 1e308),
        ("tools.a.work.cpu.mean", 1e300),
        ("tools.a.space.mem", float("nan")),
        ("tools.b.work.cpu.values", [0.1, float("inf")]),
        ("tools.b.work.cpu.values", [0.1, float("nan")]),
        ("tools.b.work.cpu.values", [0.1, 10**400]),
        ("resources.cpu.per_tool_cap", None),
        ("resources.cpu.max_active", None),
        ("request_types.r.weight", None),
    ],
)
def test_numbers_out_of_range_name_the_file_and_key(capsys, tmp_path, key, value):
    path = scenario_file(tmp_path, {key: value})
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2
    assert str(path) in err and key in err


def test_an_infinite_lognormal_cv_is_refused_at_its_key(capsys, tmp_path):
    path = scenario_file(tmp_path, {"tools.a.work.cpu": {"dist": "lognormal", "mean": 1.0, "cv": float("inf")}})
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and "tools.a.work.cpu.cv" in err


def test_a_number_yaml_reads_as_text_says_how_to_write_it(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(scenario_file(tmp_path).read_text().replace("horizon_s: 200.0", "horizon_s: 1e3"))
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and "horizon_s" in err and "1.0e+3" in err


def test_a_rate_of_zero_reached_by_a_changed_rate_is_an_error_naming_the_rate():
    scenario = parse_scenario(copy.deepcopy(BASE), "small.yaml")
    with pytest.raises(ScenarioError) as caught:
        scenario.with_rate(0.0, "r")
    assert caught.value.key == "request_types.r.rate_per_min"
    with pytest.raises(ScenarioError):
        scenario.with_rate(1e-320, None)
    types = {"r": dataclasses.replace(scenario.request_types["r"], rate_per_min=0.0)}
    with pytest.raises(ScenarioError, match="rate_per_min"):
        Simulation(dataclasses.replace(scenario, request_types=types), seed=1)


# ------------------------------------------------------------------------------------------- 2. YAML safety


def test_alias_expansion_is_bounded(capsys, tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err and "aliases" in err


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 100_000])
def test_deep_nesting_is_refused(capsys, tmp_path, depth):
    path = tmp_path / "deep.yaml"
    path.write_text("horizon_s: " + "[" * depth + "]" * depth + "\n")
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err and "nesting" in err
    if depth < 1000:  # deeper than libyaml's own limit, its parser says so first
        assert f"{MAX_DEPTH} levels" in err


def test_a_file_above_the_size_limit_is_refused_before_reading(capsys, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err and f"{MAX_FILE_BYTES:,}" in err


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary\x00", b"horizon_s: 10\n\xc3\x28\n"])
def test_binary_and_non_utf8_files_are_refused(capsys, tmp_path, content):
    path = tmp_path / "binary.yaml"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err


def test_a_directory_a_fifo_and_a_missing_file_are_refused_at_once(capsys, tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path, words in ((tmp_path, "directory"), (fifo, "regular file"), (tmp_path / "none.yaml", "No such file")):
        code, _, err = run_cli(capsys, "des", "run", str(path))
        assert code == 2 and str(path) in err and words in err


def test_an_alias_chain_nesting_deeper_and_deeper_is_refused(capsys, tmp_path):
    lines = ["a0: &a0 [1]"] + [f"a{k}: &a{k} " + "[" * 28 + f"*a{k - 1}" + "]" * 28 for k in range(1, 80)]
    path = tmp_path / "chain.yaml"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err and "nesting" in err


def test_an_integer_literal_too_long_to_read_is_refused(capsys, tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text("horizon_s: " + "1" * 5000 + "\n")
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err


def test_a_huge_dag_and_a_huge_empirical_list_are_refused_with_their_limits(capsys, tmp_path):
    nodes = {f"n{i}": {"tool": "b"} for i in range(MAX_NODES_PER_TYPE + 1)}
    path = scenario_file(tmp_path, {"request_types.r.nodes": nodes})
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and "request_types.r.nodes" in err and str(MAX_NODES_PER_TYPE) in err
    path = scenario_file(tmp_path, {"tools.b.work.cpu.values": [0.5] * (MAX_EMPIRICAL_VALUES + 1)})
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and "tools.b.work.cpu.values" in err and str(MAX_EMPIRICAL_VALUES) in err


def test_a_chain_at_the_node_limit_loads_and_runs_in_seconds(tmp_path):
    chain = {
        f"n{i:04d}": {"tool": "b", "after": [f"n{i - 1:04d}"] if i else []} for i in range(MAX_NODES_PER_TYPE)
    }
    path = scenario_file(
        tmp_path,
        {
            "horizon_s": 200_000.0,
            "request_types.r.nodes": chain,
            "request_types.r.rate_per_min": 0.001,
            "request_types.r.arrival": "deterministic",
        },
    )
    started = time.monotonic()
    sim = Simulation(load_scenario(path), seed=1)
    sim.run()
    summary = sim.summary()
    assert summary.stable and summary.types["r"].completed == 3
    assert time.monotonic() - started < 20


def test_the_example_scenarios_still_load():
    for path in sorted(SCENARIOS.glob("*.yaml")):
        assert load_scenario(path).request_types


# ------------------------------------------------------------------------------------------------- 3. meaning


def test_a_repeated_name_in_after_is_an_error(capsys, tmp_path):
    path = scenario_file(tmp_path, {"request_types.r.nodes.b.after": ["a", "a"]})
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err and "request_types.r.nodes.b.after" in err and "twice" in err


def test_requests_that_never_finish_make_the_run_unstable():
    sim = Simulation(parse_scenario(copy.deepcopy(BASE), "small.yaml"), seed=1)
    sim.types[0].dags[0].preds = (0, 2)  # node b waits for a predecessor that does not exist: nothing ever completes
    sim.run()
    summary = sim.summary()
    assert not summary.stable
    assert "never finished" in (summary.unstable_reason or "")


def test_a_type_that_completed_nothing_makes_the_run_unstable(capsys, tmp_path):
    # One arrival at 5 s needing 4 s of cpu, and the run stops at 6 s: offered load 0.8, but nothing completes.
    path = scenario_file(
        tmp_path,
        {
            "drain": False,
            "horizon_s": 6.0,
            "request_types.r.rate_per_min": 12.0,
            "request_types.r.arrival": "deterministic",
            "request_types.r.nodes": {"a": {"tool": "b"}},
            "tools.b.work.cpu": 4.0,
        },
    )
    code, text, _ = run_cli(capsys, "des", "run", str(path), "--json", "--replications", "1")
    answer = strict_json(text)
    assert code == 0 and not answer["stable"]
    assert any("no request of r completed" in reason for reason in answer["unstable_reasons"])


def test_a_run_too_long_to_finish_is_refused_naming_horizon_and_max_events(capsys, tmp_path):
    path = scenario_file(tmp_path, {"horizon_s": 1e11})
    code, _, err = run_cli(capsys, "des", "run", str(path))
    assert code == 2 and str(path) in err and "horizon_s" in err and "max_events" in err


def test_the_engine_stops_at_max_events_with_an_error_naming_it():
    scenario = dataclasses.replace(parse_scenario(copy.deepcopy(BASE), "small.yaml"), max_events=100)
    with pytest.raises(SimulationError, match="max_events"):
        Simulation(scenario, seed=1).run()


# ------------------------------------------------------------------------------------------------ 4. strict JSON


def test_sla_json_of_an_unstable_probe_is_null_with_a_reason(capsys, tmp_path):
    path = scenario_file(tmp_path, {"max_in_flight": 2, "horizon_s": 400.0})
    out = tmp_path / "sla"
    code, text, _ = run_cli(
        capsys, "des", "sla", str(path), "--request-type", "r", "--threshold", "50", "--replications", "2",
        "--rel-tol", "0.2", "--json", "--out", str(out),
    )  # fmt: skip
    assert code in (0, 1)
    answer = strict_json(text)
    unstable = [p for p in answer["probes"] if not p["stable"]]
    assert unstable and all(p["metric_s"] is None and p["reason"] == "unstable" for p in unstable)
    assert code == 0 and answer["converged"]
    strict_json((out / "probes.json").read_text())


def test_an_sla_search_that_does_not_converge_writes_no_out(capsys, tmp_path):
    # Every request takes about a second at any load, so a 0.01 s threshold fails at every probe: no answer.
    path = scenario_file(tmp_path)
    out = tmp_path / "sla"
    code, text, err = run_cli(capsys, "des", "sla", str(path), "--request-type", "r", "--threshold", "0.01",
                              "--replications", "2", "--json", "--out", str(out))  # fmt: skip
    assert code == 1 and not strict_json(text)["converged"]
    assert not out.exists() and "not written" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("argument", "value"),
    [("threshold_s", -1.0), ("threshold_s", float("nan")), ("replications", 1), ("replications", 2.5),
     ("max_replications", 1),
     ("seed", -1), ("rel_tol", 1.0), ("metric", "p101"), ("request_type", "nope"), ("scale", "all")],
)  # fmt: skip
def test_the_sla_search_api_refuses_bad_arguments_by_name(tmp_path, argument, value):
    from simfleet.producer.sla import search_sla

    path = scenario_file(tmp_path)
    arguments: dict[str, Any] = {"request_type": "r", "threshold_s": 5.0, argument: value}
    with pytest.raises(ConfigError, match=argument):
        search_sla(str(path), _must_not_run, **arguments)


def test_run_json_with_nothing_completed_is_strict(capsys, tmp_path):
    path = scenario_file(tmp_path, {"drain": False, "horizon_s": 5.0, "tools.a.work.cpu": 1000.0})
    code, text, _ = run_cli(capsys, "des", "run", str(path), "--json", "--replications", "1")
    assert code == 0
    assert strict_json(text)["types"]["r"]["mean_s"]["mean"] is None


def test_sweep_json_and_sweep_file_are_strict(capsys, tmp_path):
    path = scenario_file(tmp_path, {"drain": False, "horizon_s": 5.0, "tools.a.work.cpu": 1000.0})
    out = tmp_path / "sweep"
    code, text, _ = run_cli(
        capsys, "des", "sweep", str(path), "--rates", "1", "30", "--json", "--out", str(out), "--processes", "1"
    )
    assert code == 0
    strict_json(text)
    strict_json((out / "sweep.json").read_text())


# ------------------------------------------------------------------------------------------------------ 5. flags


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        ("run", "--replications", "0"),
        ("run", "--replications", "-1"),
        ("run", "--seed", "-1"),
        ("run", "--seed", str(2**63)),
        ("run", "--processes", "0"),
        ("run", "--processes", "-3"),
        ("run", "--timeout", "0"),
        ("sla", "--rel-tol", "0"),
        ("sla", "--rel-tol", "-1"),
        ("sla", "--rel-tol", "1"),
        ("sla", "--threshold", "-1"),
        ("sla", "--threshold", "nan"),
        ("sla", "--replications", "0"),
        ("sla", "--replications", "1"),
        ("sla", "--max-replications", "0"),
        ("sweep", "--rates", "0"),
        ("sweep", "--rates", "-2"),
        ("sweep", "--rates", "nan"),
        ("sweep", "--rates", "inf"),
        ("validate", "--scale", "0"),
        ("validate", "--scale", "-1"),
        ("validate", "--scale", "nan"),
    ],
)
def test_bad_flags_are_refused_with_the_flag_named(capsys, tmp_path, command, flag, value):
    args = ["des", command] + ([] if command == "validate" else [str(scenario_file(tmp_path))])
    if command == "sweep" and flag != "--rates":
        args += ["--rates", "10"]
    with pytest.raises(SystemExit) as caught:
        main([*args, f"{flag}={value}"])
    assert caught.value.code == 2
    assert flag in capsys.readouterr().err


def test_an_unknown_request_type_flag_names_the_flag(capsys, tmp_path):
    path = scenario_file(tmp_path)
    code, _, err = run_cli(capsys, "des", "sweep", str(path), "--rates", "10", "--request-type", "nope",
                           "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and "--request-type" in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------- 6. outputs


def test_an_unwritable_out_fails_before_any_run(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr("simfleet.worker.des.runner.run_replications", _must_not_run)
    for command in (["sweep", "--rates", "10"], ["sla", "--request-type", "r", "--threshold", "5"]):
        code, _, err = run_cli(capsys, "des", command[0], str(scenario_file(tmp_path)), *command[1:],
                               "--out", str(blocker / "out"))  # fmt: skip
        assert code == 2 and "--out" in err
    code, _, err = run_cli(capsys, "des", "run", str(scenario_file(tmp_path)), "--trace", str(tmp_path))
    assert code == 2 and "--trace" in err


def _must_not_run(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the computation started before the output was checked")


def _interrupted(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


def test_an_interrupted_run_leaves_no_output_and_keeps_the_previous_one(capsys, tmp_path, monkeypatch):
    path = scenario_file(tmp_path)
    out = tmp_path / "sweep"
    code, _, _ = run_cli(capsys, "des", "sweep", str(path), "--rates", "10", "--out", str(out), "--processes", "1")
    assert code == 0 and (out / "sweep.json").exists()
    (out / "sweep.json").write_text("from the first run")
    monkeypatch.setattr("simfleet.worker.des.runner.run_replications", _interrupted)
    code, _, _ = run_cli(capsys, "des", "sweep", str(path), "--rates", "10", "--out", str(out))
    assert code == 130
    assert (out / "sweep.json").read_text() == "from the first run"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    code, _, _ = run_cli(capsys, "des", "sweep", str(path), "--rates", "10", "--out", str(tmp_path / "fresh"))
    assert code == 130 and not (tmp_path / "fresh").exists()
    code, _, _ = run_cli(capsys, "des", "run", str(path), "--trace", str(tmp_path / "trace.txt"))
    assert code == 130 and not (tmp_path / "trace.txt").exists()


def test_a_rerun_into_the_same_out_replaces_it(capsys, tmp_path):
    path = scenario_file(tmp_path)
    out = tmp_path / "sweep"
    code, _, _ = run_cli(capsys, "des", "sweep", str(path), "--rates", "10", "--out", str(out), "--processes", "1")
    assert code == 0
    (out / "sweep.json").write_text("old")
    (out / "sweep.csv").unlink()
    code, _, _ = run_cli(capsys, "des", "sweep", str(path), "--rates", "10", "--out", str(out), "--processes", "1")
    assert code == 0
    assert strict_json((out / "sweep.json").read_text())["rates_per_min"] == [10.0]
    assert (out / "sweep.csv").exists()


def test_an_out_holding_other_files_is_refused_and_kept(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("simfleet.worker.des.runner.run_replications", _must_not_run)
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "des", "sweep", str(scenario_file(tmp_path)), "--rates", "10",
                           "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "--out" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------------------------------------- 7. pool


def _fail_first_else_sleep(args: tuple[dict[str, Any], str, int, int]) -> None:
    if args[3] == 0:
        raise ValueError("replication 0 failed")
    time.sleep(60)


def test_the_pool_stops_at_once_when_a_replication_fails(monkeypatch):
    monkeypatch.setattr(runner, "_replicate", _fail_first_else_sleep)
    scenario = parse_scenario(copy.deepcopy(BASE), "small.yaml")
    started = time.monotonic()
    with pytest.raises(ValueError, match="replication 0 failed"):
        runner.run_replications(scenario, replications=6, seed=1, processes=2)
    assert time.monotonic() - started < 15
    assert not multiprocessing.active_children()
