"""Stable field_ids for BI: one id per (table, column), assigned once, never renumbered or reused.

The ids live in ``field_dictionary`` (a ReplacingMergeTree keyed by field_id, so a row can be updated by inserting
a newer version) and are exposed as the ClickHouse DICTIONARY ``field_dict`` for ``dictGet``. Every managed
column's COMMENT is ``field_id: N``, followed by its description and unit. A new column gets the next id after the
largest ever given; a column that disappears keeps its id with ``retired_at`` set (and gets it back if it returns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.schema import TableSpec

DICTIONARY_TABLE = "field_dictionary"
DICTIONARY = "field_dict"


def create_dictionary_objects(ch: ClickHouse) -> None:
    """Create the dictionary table and the DICTIONARY object over it."""
    db = ch.database
    ch.command(
        f"CREATE TABLE IF NOT EXISTS {db}.{DICTIONARY_TABLE} (\n"
        "  field_id UInt32, table_name String, column_name String, description String, unit String, type String,\n"
        "  added_at DateTime, retired_at Nullable(DateTime), updated_at DateTime64(6)\n"
        ") ENGINE = ReplacingMergeTree(updated_at) ORDER BY field_id\n"
        "COMMENT 'field_id per (table, column): assigned once, never reused; read with FINAL or via field_dict'"
    )
    ch.command(
        f"CREATE DICTIONARY IF NOT EXISTS {db}.{DICTIONARY} (\n"
        "  field_id UInt32, table_name String, column_name String, description String, unit String, type String,\n"
        "  added_at DateTime, retired_at Nullable(DateTime)\n"
        f") PRIMARY KEY field_id SOURCE(CLICKHOUSE(QUERY 'SELECT field_id, table_name, column_name, description, "
        f"unit, type, added_at, retired_at FROM {db}.{DICTIONARY_TABLE} FINAL')) LAYOUT(HASHED()) LIFETIME(0)"
    )


def field_rows(ch: ClickHouse) -> dict[tuple[str, str], tuple[int, bool, dt.datetime]]:
    """(table, column) -> (field_id, retired, added_at) as recorded."""
    rows = ch.rows(
        f"SELECT table_name, column_name, field_id, retired_at IS NOT NULL, added_at "
        f"FROM {ch.database}.{DICTIONARY_TABLE} FINAL"
    )
    return {(t, c): (int(i), bool(r), a) for t, c, i, r, a in rows}


def sync_field_ids(ch: ClickHouse, tables: Sequence[TableSpec]) -> dict[tuple[str, str], int]:
    """Give every live column of ``tables`` an id (new ones the next free), retire vanished ones, write COMMENTs.

    The live columns are read from ``system.columns``, so a column a migration added or dropped is seen as it is.
    Only what differs is written: on an up-to-date schema this is two reads (exporters call it before each export).
    """
    db = ch.database
    names = {t.name: t for t in tables}
    live = ch.rows(
        f"SELECT table, name, type, comment FROM system.columns WHERE database = '{db}' "
        f"AND table IN ({', '.join(repr(n) for n in names) or repr('')}) ORDER BY table, position"
    )
    order = {name: i for i, name in enumerate(names)}
    live.sort(key=lambda row: order[row[0]])
    known = field_rows(ch)
    next_id = max((i for i, _, _ in known.values()), default=0) + 1
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    changes: list[tuple[int, str, str, str, str, str, bool, dt.datetime]] = []
    ids: dict[tuple[str, str], int] = {}
    comments: list[tuple[str, str, str]] = []
    for table, column, ch_type, current_comment in live:
        spec = names[table]
        try:
            described = spec.column(column)
            description, unit = described.description, described.unit
        except KeyError:
            description, unit = "", ""
        recorded = known.get((table, column))
        if recorded is None:
            field_id = next_id
            next_id += 1
            changes.append((field_id, table, column, description, unit, ch_type, False, now))
        else:
            field_id = recorded[0]
            if recorded[1]:
                changes.append((field_id, table, column, description, unit, ch_type, False, recorded[2]))
        ids[(table, column)] = field_id
        comment = f"field_id: {field_id}" + (f"; {description}" if description else "") + (f" [{unit}]" if unit else "")
        comment = comment.replace("'", "")
        if comment != current_comment:
            comments.append((table, column, comment))
    live_keys = set(ids)
    for (table, column), (field_id, retired, added_at) in known.items():
        if table in names and (table, column) not in live_keys and not retired:
            changes.append((field_id, table, column, "", "", "", True, added_at))
    if changes:
        stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        ch.insert_columns(
            DICTIONARY_TABLE,
            {
                "field_id": [c[0] for c in changes],
                "table_name": [c[1] for c in changes],
                "column_name": [c[2] for c in changes],
                "description": [c[3] for c in changes],
                "unit": [c[4] for c in changes],
                "type": [c[5] for c in changes],
                "added_at": [c[7] for c in changes],
                "retired_at": [now if c[6] else None for c in changes],
                "updated_at": [stamp for _ in changes],
            },
        )
    for table, column, comment in comments:
        ch.command(f"ALTER TABLE {db}.{table} COMMENT COLUMN `{column}` '{comment}'")
    if changes or comments:
        ch.command(f"SYSTEM RELOAD DICTIONARY {db}.{DICTIONARY}")
    return ids
