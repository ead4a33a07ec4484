"""Columnar, batched, idempotent exports: one partition (a job, a study, a data version) replaced as a whole.

An export first checks its columns (row count, key uniqueness, value ranges, NULLs where not allowed) and stops
with the offending rows named. It then fills a staging table with the same structure in batches of columns (never
row by row), checks the staging row count, and swaps the partition into the target table with
``ALTER TABLE … REPLACE PARTITION … FROM staging``, which ClickHouse applies atomically. Exporting the same job
twice, or retrying after a failure half-way (the staging table of a failed attempt is dropped and refilled), leaves
exactly one copy of every row; readers never see half an export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.errors import InputError

from .client import ClickHouse
from .schema import TableSpec

DEFAULT_BATCH_ROWS = 1_000_000


class ExportValidationError(InputError):
    """The rows of an export break the table's rules; nothing was written."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    table: str
    partition: tuple[Any, ...]
    rows: int
    batches: int


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, np.datetime64):
        return f"'{np.datetime_as_string(value, unit='D')}'"
    if hasattr(value, "isoformat"):
        return f"'{value.isoformat()}'"
    return str(int(value)) if isinstance(value, int | np.integer) else repr(value)


def partition_literal(values: Sequence[Any]) -> str:
    """The PARTITION expression of one partition value (a tuple when the key has several columns)."""
    return _literal(values[0]) if len(values) == 1 else "(" + ", ".join(_literal(v) for v in values) + ")"


def _describe_row(table: TableSpec, columns: Mapping[str, Any], row: int) -> str:
    return ", ".join(f"{k}={np.asarray(columns[k])[row]!s}" for k in table.key if k in columns)


def validate_columns(
    table: TableSpec, columns: Mapping[str, Any], partition: Sequence[Any], expected_rows: int | None = None
) -> int:
    """Check an export's columns against the table's rules; return the row count.

    Raises:
        ExportValidationError: naming the table and the offending rows (the first 20, with a count of the rest).
    """
    offences: list[str] = []
    missing = [c.name for c in table.columns if c.name not in columns and c.name not in table.partition_by]
    unknown = [name for name in columns if name not in {c.name for c in table.columns}]
    if missing or unknown:
        raise ExportValidationError(
            table.name, [f"missing column {m}" for m in missing] + [f"unknown column {u}" for u in unknown]
        )
    lengths = {name: len(values) for name, values in columns.items()}
    n = next(iter(lengths.values()), 0)
    if any(length != n for length in lengths.values()):
        raise ExportValidationError(table.name, [f"columns of different lengths: {lengths}"])
    if expected_rows is not None and n != expected_rows:
        offences.append(f"row count {n}, expected {expected_rows}")
    for spec in table.columns:
        if spec.name not in columns:
            continue
        values = np.asarray(columns[spec.name])
        if values.dtype.kind in "iuf":
            bad = np.zeros(n, dtype=bool)
            if values.dtype.kind == "f":
                bad |= np.isnan(values) & (not spec.nullable)
            with np.errstate(invalid="ignore"):
                if spec.low is not None:
                    bad |= values < spec.low
                if spec.high is not None:
                    bad |= values > spec.high
            for row in np.flatnonzero(bad)[:20]:
                offences.append(f"{_describe_row(table, columns, int(row))}: {spec.name}={values[row]} outside "
                                f"[{spec.low}, {spec.high}]")  # fmt: skip
            if bad.sum() > 20:
                offences.extend([f"{spec.name}: more out of range"] * int(bad.sum() - 20))
        elif values.dtype.kind == "O" and not spec.nullable:
            nulls = np.flatnonzero(np.array([v is None for v in values], dtype=bool))
            offences.extend(f"{_describe_row(table, columns, int(r))}: {spec.name} is NULL" for r in nulls[:20])
    key = [k for k in table.key if k in columns]
    if key and n:
        codes = np.stack([np.unique(np.asarray(columns[k]), return_inverse=True)[1].ravel() for k in key])
        order = np.lexsort(codes[::-1])
        ordered = codes[:, order]
        same = np.all(ordered[:, 1:] == ordered[:, :-1], axis=0)
        for row in order[1:][same][:20]:
            offences.append(f"{_describe_row(table, columns, int(row))}: duplicate key ({', '.join(key)})")
    if offences:
        raise ExportValidationError(f"{table.name} partition {partition_literal(partition)}", offences)
    return n


def export_partition(
    ch: ClickHouse,
    table: TableSpec,
    partition: Sequence[Any],
    columns: Mapping[str, Any],
    *,
    expected_rows: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    on_batch: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Replace one partition of ``table`` with ``columns`` (partition columns are filled in from ``partition``).

    Args:
        ch: the connected client.
        table: the target table.
        partition: the values of the table's partition key for these rows (e.g. ``(job_id,)``).
        columns: one array per column (numpy arrays or lists), all of one length.
        expected_rows: the row count the caller knows it must be (airframes x days for MP2).
        batch_rows: rows per insert.
        on_batch: called as ``on_batch(batch_index, rows_so_far)`` after each batch (progress, or fault tests).
    """
    n = validate_columns(table, columns, partition, expected_rows)
    data = dict(columns)
    for name, value in zip(table.partition_by, partition, strict=True):
        data.setdefault(name, np.full(n, value, dtype=object) if isinstance(value, str) else [value] * n)
    token = hashlib.sha1(f"{table.name}|{partition_literal(partition)}".encode()).hexdigest()[:16]
    staging = f"{table.name}__staging_{token}"
    db = ch.database
    ch.command(f"DROP TABLE IF EXISTS {db}.{staging}")
    ch.command(f"CREATE TABLE {db}.{staging} AS {db}.{table.name}")
    batches = 0
    for start in range(0, n, batch_rows):
        stop = min(n, start + batch_rows)
        ch.insert_columns(staging, {name: values[start:stop] for name, values in data.items()})
        batches += 1
        if on_batch is not None:
            on_batch(batches, stop)
    staged = int(ch.rows(f"SELECT count() FROM {db}.{staging}")[0][0])
    if staged != n:
        raise ExportValidationError(table.name, [f"staging holds {staged} rows after inserting {n}"])
    ch.command(f"ALTER TABLE {db}.{table.name} REPLACE PARTITION {partition_literal(partition)} FROM {db}.{staging}")
    ch.command(f"DROP TABLE IF EXISTS {db}.{staging}")
    return ExportReport(table.name, tuple(partition), n, batches)
