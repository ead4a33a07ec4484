"""MP2 to ClickHouse: one partition per lifecycle job in ``mp2`` and ``mp2_daily``, replaced as a whole."""

from __future__ import annotations

from typing import Any

import numpy as np

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.export import DEFAULT_BATCH_ROWS, ExportReport, export_partition
from simfleet.shared.clickhouse.schema import mp2_tables


def export_mp2(
    ch: ClickHouse,
    job_id: str,
    airframe: dict[str, np.ndarray[Any, Any]],
    daily: dict[str, np.ndarray[Any, Any]],
    *,
    airframes: int | None = None,
    days: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> list[ExportReport]:
    """Write a job's MP2; with ``airframes`` and ``days`` the row count is checked (airframes x days) first.

    ``batch_rows`` bounds each insert; the default is the fastest measured on chDB (see ``DEFAULT_BATCH_ROWS``).
    """
    tables = {t.name: t for t in mp2_tables()}
    reports = []
    if airframe:
        expected = airframes * days if airframes is not None and days is not None else None
        reports.append(
            export_partition(ch, tables["mp2"], (job_id,), airframe, expected_rows=expected, batch_rows=batch_rows)
        )
    reports.append(export_partition(ch, tables["mp2_daily"], (job_id,), daily, batch_rows=batch_rows))
    return reports
