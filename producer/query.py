"""``simfleet db query``: one read-only SQL statement against the configured ClickHouse, its answer in a chosen format.

Read-only twice over: the statement must be one statement starting with SELECT, WITH, SHOW, DESCRIBE (DESC),
EXPLAIN or EXISTS (checked here, before anything is sent), and it runs with ClickHouse's ``readonly = 1`` setting, so
a server refuses anything that would write even where the first check could be fooled. Unqualified table names are
those of the simfleet database (``SELECT count() FROM mp2_daily``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simfleet.shared.errors import ClickHouseError, ConfigError, printable

if TYPE_CHECKING:
    from simfleet.shared.clickhouse.client import ClickHouse

READ_ONLY_KINDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
"""The first word of a statement ``db query`` runs."""
FORMATS = ("table", "csv", "tsv", "json")

_COMMENT_OR_SPACE = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()", re.DOTALL)


def read_only_statement(sql: str, *, key: str = "SQL") -> str:
    """``sql`` without a trailing semicolon, once it is known to be one read-only statement.

    Raises:
        ConfigError: an empty text, several statements, or a statement that is not a query (naming ``key``).
    """
    body = _one_statement(sql, key)
    position = 0
    while match := _COMMENT_OR_SPACE.match(body, position):
        position = match.end()
    first = re.match(r"[A-Za-z]+", body[position:])
    kind = first.group(0).upper() if first else ""
    if kind not in READ_ONLY_KINDS:
        shown = printable(body[position:].split(None, 1)[0] if body[position:].strip() else body, 40)
        raise ConfigError(
            f"only queries are run: a statement starting with {', '.join(READ_ONLY_KINDS)}; not {shown!r}", key=key
        )
    return body


def _one_statement(sql: str, key: str) -> str:
    """``sql`` cut at its first semicolon outside quotes and comments, refusing anything after it."""
    quote = ""
    index = 0
    while index < len(sql):
        char = sql[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif sql.startswith("--", index):
            end = sql.find("\n", index)
            index = len(sql) if end < 0 else end
        elif sql.startswith("/*", index):
            end = sql.find("*/", index + 2)
            index = len(sql) if end < 0 else end + 1
        elif char == ";":
            rest = _COMMENT_OR_SPACE.sub("", sql[index + 1 :]).strip(";")
            if rest:
                raise ConfigError("one statement at a time (a semicolon is followed by another statement)", key=key)
            return sql[:index]
        index += 1
    if not sql.strip():
        raise ConfigError("expected an SQL statement, got an empty text", key=key)
    return sql


def run_query(ch: ClickHouse, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of read-only ``sql`` in ``ch``'s database.

    Raises:
        ConfigError: ``sql`` is not one read-only statement.
        ClickHouseError: ClickHouse refused it: one line, with ClickHouse's own message.
    """
    from simfleet.shared.clickhouse.client import with_retries

    statement = read_only_statement(sql)
    ch.client.database = ch.database
    try:
        result = with_retries(lambda: ch.client.query(statement, settings={"readonly": 1}), "query")
    except ClickHouseError as exc:
        raise ClickHouseError(f"{ch.dsn.redacted}: {_first_line(exc.__cause__ or exc)}") from exc
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def _first_line(exc: BaseException) -> str:
    """ClickHouse's message, on one line and without the setting this module appends to every statement."""
    text = str(exc).replace(" SETTINGS readonly = '1'", "").replace(" SETTINGS readonly='1'", "")
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(exc).__name__)
    return printable(line, 400)


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """The answer as ``table`` (padded columns), ``csv``, ``tsv`` (ClickHouse's escaping) or ``json`` (objects)."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2, default=_plain)
    if fmt == "tsv":
        lines = ["\t".join(_tsv(cell) for cell in row) for row in [columns, *rows]]
        return "\n".join(lines)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if cell is None else _plain(cell) for cell in row] for row in rows])
        return out.getvalue().rstrip("\n")
    from simfleet.producer.report import text_table

    if not columns:  # an empty answer may come without its column names (chDB)
        return f"({len(rows)} rows)"
    shown = [["NULL" if cell is None else printable(_plain(cell), 200) for cell in row] for row in rows]
    return text_table(list(columns), shown) + f"\n({len(rows)} row{'' if len(rows) == 1 else 's'})"


def _plain(value: Any) -> Any:
    """A cell as JSON and CSV take it: dates in ISO form, decimals and other types as text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value if isinstance(value, str | int | float | bool | list | dict) else str(value)


def _tsv(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(_plain(value))
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
