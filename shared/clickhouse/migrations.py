"""Versioned schema migrations, applied once each and recorded in ``schema_migrations``.

``simfleet db init`` (and every exporter before its first insert) runs :func:`init_db`: it creates the database and
the migrations table if missing, applies the migrations whose version is not recorded yet, in order, records each,
and then brings the field_id dictionary up to date (new columns get the next ids; dropped ones are retired).
A migration is plain code against the client; statements are written to be safe to re-run (``IF NOT EXISTS``), so
a migration interrupted half-way can simply be applied again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.field_ids import create_dictionary_objects, sync_field_ids
from simfleet.shared.clickhouse.schema import (
    DES_TABLES,
    ENSEMBLE_COLUMNS,
    FAILURES,
    WASTED,
    TableSpec,
    input_tables,
    managed_tables,
    mp2_tables,
    mp2_tables_before_ensembles,
    mp2_variants_table,
)


@dataclass(frozen=True)
class Migration:
    """One schema change."""

    version: int
    description: str
    apply: Callable[[ClickHouse], None]


def _create_tables(tables: Callable[[], list[TableSpec]]) -> Callable[[ClickHouse], None]:
    def apply(ch: ClickHouse) -> None:
        for table in tables():
            ch.command(table.create_sql(ch.database))
        ch.command(
            f"CREATE TABLE IF NOT EXISTS {ch.database}.input_versions (version_date Date, version_id UInt32, "
            "days UInt16, imported_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY (version_date, version_id) "
            "COMMENT 'data versions imported into mp1/mp3/mp4/mp5, with their horizon in days'"
        )

    return apply


def _add_des_failure_columns(ch: ClickHouse) -> None:
    """DES model v2: the outcome columns of ``des_replications`` and the wasted work of ``des_resources``.

    They are placed where a new database has them (one created after this migration existed has them: a no-op).
    """
    after = "throughput_per_min"
    for column in FAILURES:
        ch.command(f"ALTER TABLE {ch.database}.des_replications ADD COLUMN IF NOT EXISTS `{column.name}` "
                   f"{column.type} AFTER `{after}`")  # fmt: skip
        after = column.name
    ch.command(f"ALTER TABLE {ch.database}.des_resources ADD COLUMN IF NOT EXISTS `{WASTED.name}` {WASTED.type} "
               "AFTER `max_waiting`")  # fmt: skip


def _add_ensemble_columns(ch: ClickHouse) -> None:
    """Lifecycle ensembles: the member and repair-shop columns of ``mp2`` / ``mp2_daily``, and ``mp2_variants``.

    Each table gets its new columns where a new table has them and its sorting key extended by the member columns,
    in one ALTER: ClickHouse lets a sorting key grow only by columns added in the same statement (existing rows get
    zeros, a single run's members). A table that has them already is left alone, so re-running is a no-op.
    """
    for table in mp2_tables():
        added = ENSEMBLE_COLUMNS[table.name]
        present = {row[0] for row in ch.rows(f"SELECT name FROM system.columns WHERE database = '{ch.database}' "
                                             f"AND table = '{table.name}'")}  # fmt: skip
        if set(added) <= present:
            continue
        names = [c.name for c in table.columns]
        clauses = [f"ADD COLUMN IF NOT EXISTS `{name}` {table.column(name).type} AFTER `{names[names.index(name) - 1]}`"
                   for name in names if name in added]  # fmt: skip
        clauses.append(f"MODIFY ORDER BY ({', '.join(table.order_by)})")
        ch.command(f"ALTER TABLE {ch.database}.{table.name} {', '.join(clauses)}")
    ch.command(mp2_variants_table().create_sql(ch.database))


MIGRATIONS: list[Migration] = [
    Migration(1, "field_id dictionary table and DICTIONARY object", create_dictionary_objects),
    Migration(2, "input and DES tables", _create_tables(lambda: [*input_tables(), *DES_TABLES])),
    # Migration 3 creates the MP2 tables as they were then; migration 5 brings old and new databases to today's.
    Migration(3, "MP2 tables (per airframe and day, per type and day)", _create_tables(mp2_tables_before_ensembles)),
    Migration(4, "DES model v2 outcome columns (failed, timed_out, success_ratio, goodput, wasted work)",
              _add_des_failure_columns),
    Migration(5, "lifecycle ensembles: MP2 variant_id, replication, repair queue columns; mp2_variants",
              _add_ensemble_columns),
]  # fmt: skip


def applied_versions(ch: ClickHouse) -> set[int]:
    """Versions recorded in ``schema_migrations``."""
    return {int(row[0]) for row in ch.rows(f"SELECT version FROM {ch.database}.schema_migrations")}


def init_db(
    ch: ClickHouse, migrations: Sequence[Migration] = MIGRATIONS, tables: Sequence[TableSpec] | None = None
) -> list[int]:
    """Apply pending migrations, then sync field_ids for ``tables`` (default: every managed table).

    Returns:
        The versions applied by this call (empty when the schema was up to date).
    """
    ch.command(
        f"CREATE TABLE IF NOT EXISTS {ch.database}.schema_migrations "
        "(version UInt32, description String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    done = applied_versions(ch)
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        migration.apply(ch)
        ch.insert_columns("schema_migrations", {"version": [migration.version], "description": [migration.description]})
        applied.append(migration.version)
    sync_field_ids(ch, list(tables) if tables is not None else managed_tables())
    return applied


def open_db(dsn: str | None = None) -> ClickHouse:
    """A client for ``dsn`` (default: the settings' ``clickhouse_dsn``) with the schema brought up to date.

    What every command and stage that writes calls first; use it as a context manager to close the client.
    """
    from simfleet.shared.settings import load_settings

    ch = ClickHouse(dsn or load_settings().clickhouse_dsn)
    try:
        init_db(ch)
    except BaseException:
        ch.close()
        raise
    return ch
