"""``simfleet db query`` as a user types it, against an embedded ClickHouse (chDB) holding a real lifecycle run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simfleet.producer.cli import main
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

DAYS = 30


@pytest.fixture
def dsn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A chDB directory holding MP2 of one 12-airframe, 30-day lifecycle run (q1) and of an ensemble of it (q2)."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    inputs = tmp_path / "inputs"
    write_inputs(synthesize(12, DAYS, seed=1), inputs, "csv")
    variants = tmp_path / "variants.yaml"
    variants.write_text("variants:\n  - name: base\n  - name: fewer targets\n    targets: [{factor: 0.5}]\n")
    os.environ["SIMFLEET_CLICKHOUSE_DSN"] = dsn
    try:
        assert main(["lifecycle", "run", "--inputs", str(inputs), "--to-clickhouse", "--job-id", "q1"]) == 0
        assert main(["lifecycle", "run", "--inputs", str(inputs), "--to-clickhouse", "--job-id", "q2",
                     "--variants", str(variants)]) == 0  # fmt: skip
    finally:
        del os.environ["SIMFLEET_CLICKHOUSE_DSN"]
    capsys.readouterr()
    return dsn


@pytest.mark.timeout(120)
def test_query_reads_the_configured_clickhouse_as_a_table(dsn, tmp_path):
    config = tmp_path / "fleet.yaml"
    config.write_text(f"clickhouse_dsn: {dsn}\n")
    done = subprocess.run(
        [sys.executable, "-m", "simfleet.producer.cli", "db", "query",
         "SELECT ac_type, count() AS days FROM mp2_daily WHERE job_id = 'q1' GROUP BY ac_type ORDER BY ac_type"],
        env={**os.environ, "SIMFLEET_CONFIG": str(config)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ac_type", "days"]
    assert [line.split() for line in lines[2:4]] == [["0", str(DAYS)], ["1", str(DAYS)]]
    assert lines[-1] == "(2 rows)"


def test_query_prints_csv_tsv_and_json(dsn, capsys):
    sql = "SELECT day, date, ops_target FROM mp2_daily WHERE job_id = 'q1' AND ac_type = 0 ORDER BY day LIMIT 2"
    assert main(["db", "--dsn", dsn, "query", sql, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["day"] for row in rows] == [0, 1] and rows[0]["date"] < rows[1]["date"]
    assert main(["db", "--dsn", dsn, "query", sql, "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0] == "day,date,ops_target" and csv_lines[1] == f"0,{rows[0]['date']},{rows[0]['ops_target']}"
    assert main(["db", "--dsn", dsn, "query", "SELECT 'a\tb' AS text, NULL AS nothing", "--format", "tsv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["text\tnothing", "a\\tb\t\\N"]


@pytest.mark.parametrize(
    "sql",
    ["DROP TABLE mp2_daily", "SELECT 1; DROP TABLE mp2_daily", "ALTER TABLE mp2_daily DELETE WHERE 1",
     "  -- a comment\n INSERT INTO mp2_daily SELECT * FROM mp2_daily"],
)  # fmt: skip
def test_statements_that_write_are_refused_and_change_nothing(dsn, capsys, sql):
    assert main(["db", "--dsn", dsn, "query", sql]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simfleet: error: SQL: ")
    count = "SELECT count() FROM mp2_daily WHERE job_id = 'q1'"
    assert main(["db", "--dsn", dsn, "query", count, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == str(2 * DAYS)


def test_clickhouse_refusing_a_query_is_one_line_with_its_message(dsn, capsys):
    assert main(["db", "--dsn", dsn, "query", "SELECT * FROM no_such_table"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_table" in err and "UNKNOWN_TABLE" in err
    # the readonly setting is ClickHouse's own guard, beside the check of the first word
    assert main(["db", "--dsn", dsn, "query", "SELECT 1 SETTINGS readonly = 0"]) == 2
    assert "readonly" in capsys.readouterr().err


def test_an_ensemble_run_is_written_with_its_variants_named(dsn, capsys):
    sql = (
        "SELECT v.name, count() AS rows, sum(m.status_id = 2) AS flying FROM mp2 AS m JOIN mp2_variants AS v "
        "ON v.job_id = m.job_id AND v.variant_id = m.variant_id WHERE m.job_id = 'q2' "
        "GROUP BY v.name ORDER BY v.name"
    )
    assert main(["db", "--dsn", dsn, "query", sql, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["name"], row["rows"]) for row in rows] == [("base", 12 * DAYS), ("fewer targets", 12 * DAYS)]
    assert rows[0]["flying"] > rows[1]["flying"]
    assert main(["db", "--dsn", dsn, "query", "SELECT count() AS n FROM mp2_variants WHERE job_id = 'q1'",
                 "--format", "json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]
