"""Ensembles in ClickHouse: migration 5 (member and repair-shop columns, mp2_variants) and ensemble MP2 exports."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from simfleet.shared.clickhouse.field_ids import field_rows
from simfleet.shared.clickhouse.migrations import MIGRATIONS, _add_ensemble_columns, init_db
from simfleet.shared.clickhouse.mp2 import export_ensemble_mp2, export_mp2
from simfleet.shared.clickhouse.schema import ENSEMBLE_COLUMNS, mp2_tables
from simfleet.shared.errors import ExportValidationError
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.lifecycle.variants import parse_variants

TABLES = ("mp2", "mp2_daily", "mp2_variants")
ENSEMBLE = parse_variants({
    "replications": 2, "seed": 3,
    "maintenance": {"mi8": {"repair_slots": 1, "removal_hazard": 0.01, "spread": {"kind": "lognormal", "cv": 0.4}}},
    "variants": [{"name": "plan"}, {"name": "lean", "targets": [{"factor": 0.6}],
                                    "maintenance": {"mi17": {"repair_slots": 2}}}],
})  # fmt: skip


def described(ch, table):
    return ch.rows(f"SELECT name, type FROM system.columns WHERE database = '{ch.database}' AND table = '{table}' "
                   "ORDER BY position")  # fmt: skip


def keys(ch, table):
    return ch.rows(f"SELECT sorting_key, partition_key FROM system.tables WHERE database = '{ch.database}' "
                   f"AND name = '{table}'")  # fmt: skip


def in_database(ch, name):
    """The same connection working in another database of the same chDB (chDB opens one path per process)."""
    other = copy.copy(ch)
    other.database = name
    other.command(f"CREATE DATABASE IF NOT EXISTS {name}")
    return other


def test_a_database_from_before_ensembles_is_migrated_to_the_columns_of_a_new_one(ch):
    old = in_database(ch, "before_ensembles")
    assert init_db(old, MIGRATIONS[:4]) == [1, 2, 3, 4]  # what the previous release created
    assert [name for name, _ in described(old, "mp2")][:3] == ["job_id", "day", "idx"]
    assert keys(old, "mp2")[0][0] == "job_id, day, idx"
    before = field_rows(old)
    old.command(f"INSERT INTO {old.database}.mp2 (job_id, day, idx, sne) VALUES ('old-job', 0, 5, 1200)")

    assert init_db(old) == [5]
    for table in TABLES:
        assert described(old, table) == described(ch, table), table
        assert keys(old, table) == keys(ch, table), table
    spec = {t.name: t for t in mp2_tables()}
    assert keys(ch, "mp2")[0][0] == ", ".join(spec["mp2"].order_by) == "job_id, day, idx, variant_id, replication"
    after = field_rows(old)
    assert {k: v[0] for k, v in after.items() if k in before} == {k: v[0] for k, v in before.items()}
    added = [(t, c) for t in ENSEMBLE_COLUMNS for c in ENSEMBLE_COLUMNS[t]]
    added += [("mp2_variants", name) for name, _ in described(old, "mp2_variants")]
    top = max(i for i, _, _ in before.values())
    assert sorted(after[k][0] for k in added) == list(range(top + 1, top + 1 + len(added)))
    comments = dict(old.rows(f"SELECT concat(table, '.', name), comment FROM system.columns "
                             f"WHERE database = '{old.database}' AND table IN {TABLES}"))  # fmt: skip
    for table, column in added:
        assert comments[f"{table}.{column}"].startswith(f"field_id: {after[(table, column)][0]};"), (table, column)
    # The old rows read as a single run's; running the migration again changes nothing.
    assert old.rows(f"SELECT variant_id, replication, repair_queued, sne FROM {old.database}.mp2") == [(0, 0, 0, 1200)]
    _add_ensemble_columns(old)
    assert init_db(old) == [] and described(old, "mp2") == described(ch, "mp2")


def test_an_ensemble_export_is_idempotent_checks_its_members_and_names_its_variants(ch):
    sink = MemorySink()
    report = run_local(synthesize(24, 60, seed=2), sink=sink, ensemble=ENSEMBLE)
    airframe, daily = sink.table("mp2"), sink.table("mp2_daily")
    assert report.airframes == 24 and len(airframe["day"]) == 24 * 60 * 4
    for _ in range(2):
        exported = export_ensemble_mp2(ch, "ens", airframe, daily, ENSEMBLE, airframes=24, days=60)
        assert [(r.table, r.rows) for r in exported] == [("mp2", 24 * 60 * 4), ("mp2_daily", 60 * 2 * 4),
                                                         ("mp2_variants", 2)]  # fmt: skip
    db = ch.database
    want = {name: airframe[name] for name in ("day", "variant_id", "replication", "idx", "status_id", "sne",
                                              "repair_queued")}  # fmt: skip
    got = ch.columns(f"SELECT {', '.join(want)} FROM {db}.mp2 WHERE job_id = 'ens' "
                     "ORDER BY day, variant_id, replication, idx")  # fmt: skip
    for name, values in zip(want, got, strict=True):
        np.testing.assert_array_equal(np.asarray(values, dtype=np.int64), want[name].astype(np.int64), name)
    queue = ch.rows(f"SELECT sum(repair_queue), sum(unplanned_2_4) FROM {db}.mp2_daily WHERE job_id = 'ens'")
    assert queue == [(int(daily["repair_queue"].sum()), int(daily["unplanned_2_4"].sum()))] and queue[0][0] > 0
    rows = ch.rows(f"SELECT variant_id, name, replications, seed, definition FROM {db}.mp2_variants "
                   "WHERE job_id = 'ens' ORDER BY variant_id")  # fmt: skip
    assert [row[:4] for row in rows] == [(0, "plan", 2, 3), (1, "lean", 2, 3)]
    lean = json.loads(rows[1][4])
    assert lean["targets"][0]["factor"] == 0.6
    assert lean["maintenance"]["mi8"]["repair_slots"] == 1 and lean["maintenance"]["mi17"]["repair_slots"] == 2
    assert parse_variants({"variants": [json.loads(row[4]) for row in rows]}).variants[1].name == "lean"

    # The members are neither a fleet four times the size nor rows that may repeat a (day, idx).
    with pytest.raises(ExportValidationError, match=r"row count 5760, expected 1440"):
        export_mp2(ch, "ens", airframe, daily, airframes=24, days=60)
    twice = {name: np.where(airframe["replication"] == 1, 0, airframe["replication"]) if name == "replication"
             else values for name, values in airframe.items()}  # fmt: skip
    with pytest.raises(ExportValidationError, match=r"day=0, variant_id=0, replication=0, idx=0: duplicate key"):
        export_ensemble_mp2(ch, "other", twice, daily, ENSEMBLE, airframes=24, days=60)
    assert ch.rows(f"SELECT DISTINCT job_id FROM {db}.mp2_variants") == [("ens",)]  # nothing swapped in

    # A single run exported under the ensemble job's id takes its variants away.
    single = MemorySink()
    run_local(synthesize(24, 60, seed=2), sink=single)
    export_mp2(ch, "ens", single.table("mp2"), single.table("mp2_daily"), airframes=24, days=60)
    assert ch.rows(f"SELECT count() FROM {db}.mp2_variants WHERE job_id = 'ens'") == [(0,)]
    assert ch.rows(f"SELECT count(), max(variant_id) FROM {db}.mp2 WHERE job_id = 'ens'") == [(24 * 60, 0)]
