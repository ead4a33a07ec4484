"""Lifecycle inputs in ClickHouse: MP1, MP3, MP4, MP5 keyed by data version (``version_date``, ``version_id``).

:func:`import_inputs` is what ``simfleet db import-inputs DIR --version-id N`` runs: it loads and validates an
inputs directory and replaces that version's partition of each table (an example for ETL authors: columnar
inserts, one partition per version). :class:`ClickHouseSource` reads a version back as :class:`LifecycleInputs`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import numpy as np

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.export import ExportReport, PartitionWriter
from simfleet.shared.clickhouse.schema import VERSION_COLUMNS, TableSpec, input_tables
from simfleet.shared.errors import ConfigError, InputError


def import_inputs(ch: ClickHouse, inputs: Any, version_id: int, *, batch_rows: int = 1_000_000) -> list[ExportReport]:
    """Write validated lifecycle inputs (``LifecycleInputs``) as version (version_date, version_id).

    All or nothing: the four tables are staged first (each checked against its columns' ranges), and only when all
    are staged is each partition swapped in; a failure before that drops every staging table and leaves the
    version as it was.

    Raises:
        ConfigError: ``version_id`` is outside what the schema's ``version_id`` column holds.
        ExportValidationError: a value is outside its column's range (nothing written).
    """
    high = int(next(c.high for c in VERSION_COLUMNS if c.name == "version_id") or 0)
    if isinstance(version_id, bool) or not isinstance(version_id, int) or not 0 <= version_id <= high:
        raise ConfigError(f"expected an integer 0..{high}, got {version_id!r}", key="version_id")
    partition = (inputs.version_date, version_id)
    with contextlib.ExitStack() as staged:
        writers = []
        for table in input_tables():
            writer = staged.enter_context(PartitionWriter(ch, table, partition, batch_rows=batch_rows))
            writer.write(_columns(table, inputs.table(table.name)))
            writers.append(writer)
        reports = [writer.commit() for writer in writers]
    ch.command(
        f"INSERT INTO {ch.database}.input_versions (version_date, version_id, days) "
        f"VALUES ('{inputs.version_date.isoformat()}', {int(version_id)}, {int(inputs.days)})"
    )
    return reports


def _columns(table: TableSpec, data: dict[str, Any]) -> dict[str, Any]:
    """One input table's columns as an export takes them: NULL (``None``) for a missing value where allowed."""
    columns: dict[str, Any] = {}
    for spec in table.columns:
        if spec.name in table.partition_by:
            continue
        values = np.asarray(data[spec.name])
        if spec.nullable:
            missing = np.isnat(values) if values.dtype.kind == "M" else values < 0
            boxed = values.astype(object)
            boxed[missing] = None
            values = boxed
        columns[spec.name] = values
    return columns


class ClickHouseSource:
    """An inputs source reading one data version from ClickHouse (the ``inputs: clickhouse`` of a job)."""

    def __init__(self, ch: ClickHouse, version_date: dt.date, version_id: int, days: int | None = None) -> None:
        self.ch = ch
        self.version_date = version_date
        self.version_id = version_id
        self.days = days

    def load(self) -> Any:
        """Read the four tables of the version as columnar numpy tables."""
        from simfleet.shared.lifecycle_contract import LifecycleInputs

        where = f"version_date = '{self.version_date.isoformat()}' AND version_id = {int(self.version_id)}"
        tables: dict[str, dict[str, Any]] = {}
        for table in input_tables():
            names = [c.name for c in table.columns if c.name not in table.partition_by]
            found = self.ch.columns(
                f"SELECT {', '.join(names)} FROM {self.ch.database}.{table.name} WHERE {where} "
                f"ORDER BY {', '.join(k for k in table.order_by if k not in table.partition_by)}"
            ) or [[] for _ in names]
            columns = {}
            for values, spec in zip(found, (c for c in table.columns if c.name in names), strict=True):
                columns[spec.name] = _to_contract(np.asarray(values, dtype=object), spec.type)
            tables[table.name] = columns
        if not len(tables["mp3"]["aircraft_number"]):
            raise InputError("clickhouse", [f"no inputs stored for version_date={self.version_date}, "
                                            f"version_id={self.version_id}"])  # fmt: skip
        days = self.days
        if days is None:
            rows = self.ch.rows(
                f"SELECT days FROM {self.ch.database}.input_versions WHERE {where} ORDER BY days DESC LIMIT 1"
            )
            days = int(rows[0][0])
        return LifecycleInputs(self.version_date, days, tables["mp1"], tables["mp3"], tables["mp4"], tables["mp5"])


def _to_contract(values: np.ndarray[Any, Any], ch_type: str) -> np.ndarray[Any, Any]:
    """ClickHouse values to the inputs contract: int64 with -1 for NULL, datetime64[D] with NaT, str types."""
    if "Date" in ch_type:
        return np.array([np.datetime64(v, "D") if v is not None else np.datetime64("NaT") for v in values],
                        dtype="datetime64[D]")  # fmt: skip
    if "String" in ch_type:
        return np.asarray(values, dtype=str)
    return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
