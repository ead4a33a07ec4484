"""The ClickHouse commands as a user types them: ``db init``, ``db fields``, ``db import-inputs``, ``des run
--to-clickhouse``; each against its own chDB directory, read back through the same client."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simfleet.producer.cli import main
from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'clickhouse'}"


def test_db_init_twice_then_fields_lists_every_id_once(dsn, capsys):
    assert main(["db", "--dsn", dsn, "init"]) == 0
    first = capsys.readouterr().out
    assert main(["db", "--dsn", dsn, "init"]) == 0
    assert capsys.readouterr().out == first  # nothing applied twice, no id added
    assert main(["db", "--dsn", dsn, "fields", "--json"]) == 0
    fields = json.loads(capsys.readouterr().out)
    count = int(re.search(r"(\d+) field_ids", first).group(1))
    assert len(fields) == count and len({f["field_id"] for f in fields}) == count
    assert {"table": "mp2", "column": "status_id"}.items() <= next(
        f for f in fields if (f["table"], f["column"]) == ("mp2", "status_id")
    ).items()


def test_db_import_inputs_loads_a_version_a_lifecycle_job_can_name(dsn, tmp_path, capsys):
    directory = tmp_path / "inputs"
    inputs = synthesize(12, 40, seed=3)
    write_inputs(inputs, directory, "csv")
    assert main(["db", "--dsn", dsn, "import-inputs", str(directory), "--version-id", "4"]) == 0
    out = capsys.readouterr().out
    assert f"mp3: 12 rows (version {inputs.version_date}, 4)" in out
    with ClickHouse(dsn) as ch:
        (count,) = ch.rows(
            f"SELECT count() FROM {ch.database}.mp3 WHERE version_date = '{inputs.version_date}' AND version_id = 4"
        )[0]
    assert count == 12


def test_db_import_inputs_of_a_bad_directory_names_the_file(dsn, tmp_path, capsys):
    directory = tmp_path / "inputs"
    write_inputs(synthesize(12, 40, seed=3), directory, "csv")
    (directory / "mp3.csv").write_text("aircraft_number\n1\n")
    assert main(["db", "--dsn", dsn, "import-inputs", str(directory), "--version-id", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simfleet: error: mp3: 1 problem(s)")  # the missing columns in one line, not one per column
    assert f"{directory / 'mp3.csv'}: no column psn, partno, ac_type," in err


def test_des_run_to_clickhouse_writes_the_study_it_printed(dsn, monkeypatch, capsys):
    monkeypatch.setenv("SIMFLEET_CLICKHOUSE_DSN", dsn)
    scenario = str(SCENARIOS / "web_search_load_test.yaml")
    assert main(["des", "run", scenario, "--replications", "2", "--processes", "1", "--json", "--to-clickhouse"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    study_id = re.search(r"study (\S+) written to", captured.err).group(1)
    with ClickHouse(dsn) as ch:
        replications = ch.rows(
            f"SELECT replication, any(seed), count() FROM {ch.database}.des_replications "
            f"WHERE study_id = '{study_id}' GROUP BY replication ORDER BY replication"
        )
        (p95,) = ch.rows(
            f"SELECT mean FROM {ch.database}.des_aggregates WHERE study_id = '{study_id}' "
            "AND scope = 'type' AND name = 'web-search' AND figure = 'p95_s'"
        )[0]
    assert [r for r, _, _ in replications] == [0, 1] and {s for _, s, _ in replications} == {20240602}  # its seed
    assert all(n == len(printed["types"]) + 1 for _, _, n in replications)  # one per request type, and '(all)'
    assert p95 == pytest.approx(printed["types"]["web-search"]["p95_s"]["mean"])


def test_db_import_inputs_failing_half_way_leaves_no_staging_table_and_no_table_of_the_version(
    dsn, tmp_path, capsys, monkeypatch
):
    from simfleet.shared.errors import ClickHouseError

    directory = tmp_path / "inputs"
    inputs = synthesize(12, 40, seed=3)
    write_inputs(inputs, directory, "csv")
    insert = ClickHouse.insert_columns

    def failing(self, table, columns, *, constants=None):
        if table.startswith("mp4"):
            raise ClickHouseError("insert refused (injected)")
        insert(self, table, columns, constants=constants)

    monkeypatch.setattr(ClickHouse, "insert_columns", failing)
    assert main(["db", "--dsn", dsn, "import-inputs", str(directory), "--version-id", "7"]) == 2
    assert "insert refused (injected)" in capsys.readouterr().err
    with ClickHouse(dsn) as ch:
        tables = [name for (name,) in ch.rows(f"SELECT name FROM system.tables WHERE database = '{ch.database}'")]
        written = {
            table: ch.rows(f"SELECT count() FROM {ch.database}.{table} WHERE version_id = 7")[0][0]
            for table in ("mp1", "mp3", "mp4", "mp5")
        }
    assert [name for name in tables if "staging" in name] == []
    assert written == {"mp1": 0, "mp3": 0, "mp4": 0, "mp5": 0}  # all or nothing: mp1 and mp3 were staged only


@pytest.mark.parametrize("version_id", ["-1", "4294967296", "x"])
def test_db_import_inputs_refuses_a_version_id_the_schema_cannot_hold(dsn, tmp_path, capsys, version_id):
    with pytest.raises(SystemExit) as exited:
        main(["db", "--dsn", dsn, "import-inputs", str(tmp_path), "--version-id", version_id])
    assert exited.value.code == 2
    assert "argument --version-id:" in capsys.readouterr().err
