"""MP2 to ClickHouse: one partition per lifecycle job in ``mp2`` and ``mp2_daily``, replaced as a whole.

A job's MP2 arrives as chunks of days (the result checkpoints of its execute stages). :func:`export_mp2_chunks`
stages them one at a time, so an export's memory is one chunk whatever the horizon, and swaps both partitions in
only once every chunk is staged and the row counts are right: readers see the previous export or the new one, never
a part of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.export import DEFAULT_BATCH_ROWS, ExportReport, PartitionWriter
from simfleet.shared.clickhouse.schema import mp2_tables

Columns = dict[str, np.ndarray[Any, Any]]


def export_mp2_chunks(
    ch: ClickHouse,
    job_id: str,
    chunks: Iterable[tuple[Columns, Columns]],
    *,
    airframes: int | None = None,
    days: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> list[ExportReport]:
    """Write a job's MP2 from its chunks ``(per airframe and day, per type and day)``, in day order.

    With ``airframes`` and ``days`` the per-airframe row count is checked (airframes x days) before the swap. An
    empty per-airframe table in every chunk (a job that logged aggregates only) leaves ``mp2`` untouched.
    """
    tables = {t.name: t for t in mp2_tables()}
    job = (job_id,)
    with (
        PartitionWriter(ch, tables["mp2"], job, batch_rows=batch_rows) as airframe_writer,
        PartitionWriter(ch, tables["mp2_daily"], job, batch_rows=batch_rows) as daily_writer,
    ):
        per_airframe = False
        for airframe, daily in chunks:
            if airframe:
                per_airframe = True
                airframe_writer.write(airframe)
            daily_writer.write(daily)
            del airframe, daily  # let this chunk go before the next one is read
        reports = []
        if per_airframe:
            expected = airframes * days if airframes is not None and days is not None else None
            reports.append(airframe_writer.commit(expected))
        else:
            airframe_writer.abort()
        reports.append(daily_writer.commit())
        return reports


def export_mp2(
    ch: ClickHouse,
    job_id: str,
    airframe: Columns,
    daily: Columns,
    *,
    airframes: int | None = None,
    days: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> list[ExportReport]:
    """Write a job's MP2 held whole in memory (a local run); see :func:`export_mp2_chunks`."""
    return export_mp2_chunks(ch, job_id, [(airframe, daily)], airframes=airframes, days=days, batch_rows=batch_rows)
