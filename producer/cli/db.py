"""``simfleet db init|fields|import-inputs|query``: the schema, its field_id dictionary, inputs by version, SQL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli.options import bounded_int
from simfleet.shared.clickhouse.schema import VERSION_COLUMNS
from simfleet.shared.settings import load_settings

if TYPE_CHECKING:
    from simfleet.shared.clickhouse.client import ClickHouse

VERSION_ID_MAX = int(next(c.high for c in VERSION_COLUMNS if c.name == "version_id") or 0)
"""The largest ``--version-id``: what the schema's ``version_id`` column (``UInt32``) holds."""


def register(families: Any) -> None:
    """Add the ``db`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("db", help="ClickHouse schema, field_ids and inputs")
    parser.add_argument("--dsn", help="ClickHouse DSN (default: clickhouse_dsn of the settings)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    init = commands.add_parser("init", help="create every table, the field_id dictionary and its DICTIONARY")
    init.set_defaults(handler=_init)
    fields = commands.add_parser("fields", help="list the field_id dictionary")
    fields.add_argument("--json", action="store_true", help="print the dictionary as JSON")
    fields.set_defaults(handler=_fields)
    load = commands.add_parser("import-inputs", help="load an inputs directory into MP1/MP3/MP4/MP5 as a version")
    load.add_argument("directory", type=Path, help="the inputs directory (mp1, mp3, mp4, mp5, meta.yaml)")
    load.add_argument("--version-id", type=bounded_int(0, VERSION_ID_MAX), required=True,
                      help=f"version number within the inputs' version_date, 0..{VERSION_ID_MAX}")  # fmt: skip
    load.set_defaults(handler=_import)
    query = commands.add_parser("query", help="run one read-only SQL query (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)",
                                description="Run one read-only SQL statement against the configured ClickHouse; "
                                "unqualified tables are the simfleet database's.")  # fmt: skip
    query.add_argument("sql", metavar="SQL", help='the statement, e.g. "SELECT count() FROM mp2_daily"')
    query.add_argument("--format", choices=("table", "csv", "tsv", "json"), default="table",
                       help="how the answer is printed (default: an aligned table)")  # fmt: skip
    query.set_defaults(handler=_query)


def connect(args: argparse.Namespace) -> ClickHouse:
    """The client for ``--dsn`` or the settings' DSN, with the schema brought up to date."""
    from simfleet.shared.clickhouse.migrations import open_db

    return open_db(args.dsn)


def _init(args: argparse.Namespace) -> int:
    from simfleet.shared.clickhouse.field_ids import DICTIONARY_TABLE

    with connect(args) as ch:
        count = ch.rows(f"SELECT count() FROM {ch.database}.{DICTIONARY_TABLE} FINAL")[0][0]
        versions = sorted(v for (v,) in ch.rows(f"SELECT version FROM {ch.database}.schema_migrations"))
        print(f"{ch.dsn.redacted}: schema at migration {versions[-1]}, {count} field_ids")
    return 0


def _fields(args: argparse.Namespace) -> int:
    from simfleet.shared.clickhouse.field_ids import DICTIONARY_TABLE

    with connect(args) as ch:
        rows = ch.rows(
            f"SELECT field_id, table_name, column_name, type, unit, description, retired_at IS NOT NULL "
            f"FROM {ch.database}.{DICTIONARY_TABLE} FINAL ORDER BY field_id"
        )
    if args.json:
        keys = ("field_id", "table", "column", "type", "unit", "description", "retired")
        json.dump([dict(zip(keys, row, strict=True)) for row in rows], sys.stdout, indent=2, default=str)
        print()
    else:
        for field_id, table, column, ch_type, unit, description, retired in rows:
            flag = " (retired)" if retired else ""
            print(f"{field_id:>5}  {table}.{column}  {ch_type}  [{unit}]  {description}{flag}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from simfleet.shared.clickhouse.inputs import import_inputs
    from simfleet.worker.lifecycle.inputs import load_inputs

    inputs = load_inputs(args.directory)
    with connect(args) as ch:
        reports = import_inputs(ch, inputs, args.version_id)
    for report in reports:
        print(f"{report.table}: {report.rows} rows (version {inputs.version_date}, {args.version_id})")
    return 0


def _query(args: argparse.Namespace) -> int:
    from simfleet.producer.query import format_rows, read_only_statement, run_query
    from simfleet.shared.clickhouse.client import ClickHouse, parse_dsn

    read_only_statement(args.sql)  # before connecting: a refused statement never waits on ClickHouse
    if args.dsn is not None:
        parse_dsn(args.dsn, key="--dsn")
    with ClickHouse(args.dsn or load_settings().clickhouse_dsn) as ch:
        columns, rows = run_query(ch, args.sql)
    print(format_rows(columns, rows, args.format))
    return 0
