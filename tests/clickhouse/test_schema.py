import re

import pytest

from simfleet.shared.clickhouse.field_ids import DICTIONARY_TABLE, field_rows, sync_field_ids
from simfleet.shared.clickhouse.migrations import Migration, init_db
from simfleet.shared.clickhouse.schema import managed_tables


def comments(ch, table):
    return {name: comment for name, comment in ch.rows(
        f"SELECT name, comment FROM system.columns WHERE database = '{ch.database}' AND table = '{table}'"
    )}  # fmt: skip


def test_init_creates_every_table_and_the_dictionary(ch):
    tables = {name for (name,) in ch.rows(f"SHOW TABLES FROM {ch.database}")}
    assert {t.name for t in managed_tables()} <= tables
    assert {"field_dictionary", "field_dict", "schema_migrations", "input_versions"} <= tables
    assert init_db(ch) == []  # applied once, recorded


def test_narrow_types_and_sorting_keys(ch):
    types = dict(ch.rows(f"SELECT name, type FROM system.columns WHERE database = '{ch.database}' AND table = 'mp3'"))
    assert types["status_id"] == "UInt8" and types["repair_days"] == "UInt16" and types["sne"] == "UInt32"
    assert types["mfg_date"] == "Date" and types["ll"] == "Nullable(UInt32)"
    key = ch.rows(f"SELECT sorting_key FROM system.tables WHERE database = '{ch.database}' AND name = 'mp5'")[0][0]
    assert key.startswith("version_date, version_id, date")


def test_every_exported_column_comment_carries_its_field_id(ch):
    recorded = field_rows(ch)
    for table in managed_tables():
        for column, comment in comments(ch, table.name).items():
            match = re.match(r"field_id: (\d+)", comment)
            assert match, (table.name, column, comment)
            assert int(match.group(1)) == recorded[(table.name, column)][0]


def test_init_puts_back_a_comment_someone_changed_and_leaves_the_rest(ch):
    before = comments(ch, "mp2")
    ch.command(f"ALTER TABLE {ch.database}.mp2 COMMENT COLUMN `sne` 'edited by hand'")
    init_db(ch)
    assert comments(ch, "mp2") == before


def test_field_ids_survive_reinitialisation(ch):
    before = field_rows(ch)
    init_db(ch)
    sync_field_ids(ch, managed_tables())
    assert field_rows(ch) == before
    ids = [i for i, _, _ in before.values()]
    assert sorted(ids) == list(range(1, len(ids) + 1))


def test_a_migration_adding_a_column_gives_it_the_next_id_and_keeps_the_others(ch):
    before = field_rows(ch)
    top = max(i for i, _, _ in before.values())

    def add_column(client):
        client.command(f"ALTER TABLE {client.database}.des_resources ADD COLUMN IF NOT EXISTS queue_p95 Float64")

    assert init_db(ch, [*__import__("simfleet.shared.clickhouse.migrations", fromlist=["MIGRATIONS"]).MIGRATIONS,
                        Migration(99, "add des_resources.queue_p95", add_column)]) == [99]  # fmt: skip
    after = field_rows(ch)
    assert after[("des_resources", "queue_p95")][0] == top + 1
    assert {k: v for k, v in after.items() if k in before} == before
    assert comments(ch, "des_resources")["queue_p95"].startswith(f"field_id: {top + 1}")


def test_a_dropped_column_keeps_its_id_retired_and_the_id_is_never_reused(ch):
    dropped = field_rows(ch)[("des_resources", "max_waiting")][0]
    ch.command(f"ALTER TABLE {ch.database}.des_resources DROP COLUMN max_waiting")
    sync_field_ids(ch, managed_tables())
    ch.command(f"ALTER TABLE {ch.database}.des_resources ADD COLUMN another Float64")
    sync_field_ids(ch, managed_tables())
    rows = field_rows(ch)
    assert rows[("des_resources", "max_waiting")][:2] == (dropped, True)
    assert rows[("des_resources", "another")][0] == max(i for i, _, _ in rows.values())
    assert rows[("des_resources", "another")][0] != dropped


def test_dictget_finds_a_field_by_id(ch):
    field_id = field_rows(ch)[("mp3", "sne")][0]
    table, column = ch.rows(
        f"SELECT dictGet('{ch.database}.field_dict', 'table_name', toUInt32({field_id})), "
        f"dictGet('{ch.database}.field_dict', 'column_name', toUInt32({field_id}))"
    )[0]
    assert (table, column) == ("mp3", "sne")
    assert ch.rows(f"SELECT count() FROM {ch.database}.{DICTIONARY_TABLE} FINAL")[0][0] == len(field_rows(ch))


@pytest.mark.parametrize("table", ["mp1", "mp3", "mp4", "mp5", "des_replications", "des_aggregates"])
def test_tables_are_partitioned_by_version_or_study(ch, table):
    key = ch.rows(f"SELECT partition_key FROM system.tables WHERE database = '{ch.database}' AND name = '{table}'")[0][
        0
    ]
    assert key in ("(version_date, version_id)", "study_id")


def test_a_database_from_before_model_v2_gets_the_failure_columns_and_takes_a_v2_study(ch):
    # The database as the previous release left it: without migration 4's columns and its record.
    from simfleet.shared.clickhouse.des import export_des_study
    from simfleet.shared.clickhouse.schema import FAILURES, WASTED
    from simfleet.worker.des.aggregate import aggregate
    from simfleet.worker.des.runner import run_replications
    from tests.des.helpers import faulty

    for column in FAILURES:
        ch.command(f"ALTER TABLE {ch.database}.des_replications DROP COLUMN `{column.name}`")
    ch.command(f"ALTER TABLE {ch.database}.des_resources DROP COLUMN `{WASTED.name}`")
    ch.command(f"ALTER TABLE {ch.database}.schema_migrations DELETE WHERE version = 4 SETTINGS mutations_sync = 1")
    assert init_db(ch) == [4]
    names = [row[0] for row in ch.rows(f"DESCRIBE TABLE {ch.database}.des_replications")]
    start = names.index("throughput_per_min")
    assert names[start + 1 : start + 5] == ["failed", "timed_out", "success_ratio", "goodput_per_min"]
    assert comments(ch, "des_replications")["success_ratio"].startswith("field_id: ")
    scenario = faulty(horizon_s=400.0)
    summaries = run_replications(scenario, replications=2, seed=1, processes=1)
    rates = {name: rtype.rate_per_min for name, rtype in scenario.request_types.items()}
    export_des_study(ch, "v2", summaries, aggregate(summaries), rates)
    rows = ch.rows(f"SELECT request_type, failed, success_ratio FROM {ch.database}.des_replications "
                   "WHERE study_id = 'v2' AND replication = 0 ORDER BY request_type")  # fmt: skip
    expected = sorted((name, f.failed, f.success_ratio) for name, f in [*summaries[0].types.items(),
                                                                         ("(all)", summaries[0].overall)])  # fmt: skip
    assert rows == expected
    wasted = ch.rows(f"SELECT resource, wasted_work_per_s FROM {ch.database}.des_resources "
                     "WHERE study_id = 'v2' AND replication = 0 ORDER BY resource")  # fmt: skip
    assert dict(wasted) == {name: getattr(r, "wasted_work_per_s", None) for name, r in summaries[0].resources.items()}
