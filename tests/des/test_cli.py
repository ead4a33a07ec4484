import json
from pathlib import Path

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
