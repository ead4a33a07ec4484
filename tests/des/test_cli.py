import json
from pathlib import Path

import pytest

from simfleet.producer.cli import main

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def test_des_run_prints_the_aggregate_as_json(capsys):
    code = main(["des", "run", str(SCENARIOS / "mixed_workload.yaml"), "--replications", "3", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["replications"] == 3
    assert set(result["types"]) == {"web-search", "product-matching", "deep-research"}
    assert 0.6 < result["resources"]["npu"]["utilisation"]["mean"] < 0.8


def test_des_run_prints_a_table_and_writes_a_trace(capsys, tmp_path):
    trace = tmp_path / "trace.txt"
    code = main(
        ["des", "run", str(SCENARIOS / "web_search_load_test.yaml"), "--replications", "2", "--trace", str(trace)]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "web-search" in table and "utilisation" in table and "Little's law" in table
    lines = trace.read_text().splitlines()
    assert lines[0].split()[1] == "arrive"
    assert sum(1 for line in lines if " finish " in line) > 1000


def test_des_run_with_the_same_seed_prints_the_same_answer(capsys):
    args = ["des", "run", str(SCENARIOS / "web_search_load_test.yaml"), "--replications", "2", "--json"]
    main([*args, "--seed", "4"])
    first = json.loads(capsys.readouterr().out)
    main([*args, "--seed", "4", "--processes", "1"])
    second = json.loads(capsys.readouterr().out)
    assert first["types"] == second["types"]


def test_bad_scenario_exits_with_a_message_naming_the_file_and_key(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("horizon_s: 10\nresources: {cpu: {capacity: 1, speed: 2}}\ntools: {}\nrequest_types: {}\n")
    assert main(["des", "run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "resources.cpu.speed" in err


def test_des_validate_passes_every_case_of_the_model(capsys):
    # At 0.4 of the default horizons (the command's default is the full scale): the same cases and tolerances, the
    # worst error at about two thirds of its tolerance, in a third of the time.
    code = main(["des", "validate", "--scale", "0.4", "--json"])
    rows = json.loads(capsys.readouterr().out)
    failed = [row for row in rows if not row["passed"]]
    assert failed == []
    assert code == 0
    assert len(rows) >= 32
    assert {"theory", "measured", "error", "tolerance"} <= set(rows[0])


def without_wall_clock(aggregate: dict) -> dict:
    return {key: value for key, value in aggregate.items() if key != "run"}


def test_both_engines_print_the_same_answer_and_a_trace_comes_from_the_python_engine(capsys, tmp_path):
    args = ["des", "run", str(SCENARIOS / "rag_with_failures.yaml"), "--replications", "3", "--json"]
    answers = {}
    for engine in ("compiled", "python"):
        assert main([*args, "--engine", engine]) == 0
        answers[engine] = without_wall_clock(json.loads(capsys.readouterr().out))
    trace = tmp_path / "trace.txt"
    assert main([*args, "--trace", str(trace)]) == 0  # replication 0 on the Python engine, 1 and 2 compiled
    traced = without_wall_clock(json.loads(capsys.readouterr().out))
    assert answers["compiled"] == answers["python"] == traced
    assert " timeout " in trace.read_text() or " fail " in trace.read_text()


def test_an_unknown_engine_is_refused_naming_the_flag_and_the_choices(capsys):
    for command in (["run", str(SCENARIOS / "mixed_workload.yaml")], ["validate"],
                    ["sla", str(SCENARIOS / "deep_research_sla.yaml")]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main(["des", *command, "--engine", "numba"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "--engine" in err and "'numba'" in err and "compiled" in err and "python" in err
