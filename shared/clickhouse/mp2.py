"""MP2 to ClickHouse: one partition per lifecycle job in ``mp2``, ``mp2_daily`` and ``mp2_variants``, replaced whole.

A job's MP2 arrives as chunks of days (the result checkpoints of its execute stages). :func:`export_mp2_chunks`
stages them one at a time, so an export's memory is one chunk whatever the horizon, and swaps the partitions in
only once every chunk is staged and the row counts are right: readers see the previous export or the new one, never
a part of it. An ensemble job (variants x replications) also writes its variants to ``mp2_variants`` (one row per
variant, with its definition as JSON), replaced with its MP2; a single run's export removes any variants an earlier
export under the same job id left.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

import msgspec
import numpy as np

from simfleet.shared.clickhouse.client import ClickHouse
from simfleet.shared.clickhouse.export import DEFAULT_BATCH_ROWS, ExportReport, PartitionWriter, partition_literal
from simfleet.shared.clickhouse.schema import mp2_tables, mp2_variants_table
from simfleet.shared.messages.plan import Ensemble

Columns = dict[str, np.ndarray[Any, Any]]


def variant_rows(ensemble: Ensemble) -> dict[str, Any]:
    """The ``mp2_variants`` columns of an ensemble (without ``job_id``): one row per variant, in order.

    ``definition`` is the variant as JSON with ``maintenance`` holding the options each type runs with (the
    ensemble's defaults filled in), so a row says everything its MP2 rows were computed with but the inputs.
    """
    from simfleet.shared.lifecycle_contract import AC_TYPES

    definitions = []
    for v, variant in enumerate(ensemble.variants):
        effective = {t: ensemble.maintenance_of(v, t) for t in AC_TYPES
                     if t in variant.maintenance or t in ensemble.maintenance}  # fmt: skip
        definitions.append(msgspec.json.encode(msgspec.structs.replace(variant, maintenance=effective)).decode())
    count = len(ensemble.variants)
    return {
        "variant_id": np.arange(count, dtype=np.uint16),
        "name": [variant.name for variant in ensemble.variants],
        "replications": np.full(count, ensemble.replications, dtype=np.uint16),
        "seed": np.full(count, ensemble.seed, dtype=np.uint64),
        "definition": definitions,
    }


def export_mp2_chunks(
    ch: ClickHouse,
    job_id: str,
    chunks: Iterable[tuple[Columns, Columns]],
    *,
    airframes: int | None = None,
    days: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    ensemble: Ensemble | None = None,
) -> list[ExportReport]:
    """Write a job's MP2 from its chunks ``(per airframe and day, per type and day)``, in day order.

    With ``airframes`` (the fleet's size) and ``days`` the per-airframe row count is checked before the swap:
    airframes x days, times variants x replications for an ensemble. An empty per-airframe table in every chunk (a
    job that logged aggregates only) leaves ``mp2`` untouched. With an ``ensemble`` its variants replace the job's
    partition of ``mp2_variants`` in the same step; without one, that partition is dropped.
    """
    tables = {t.name: t for t in mp2_tables()}
    job = (job_id,)
    members = 1 if ensemble is None else ensemble.members
    with ExitStack() as writers:
        airframe_writer = writers.enter_context(PartitionWriter(ch, tables["mp2"], job, batch_rows=batch_rows))
        daily_writer = writers.enter_context(PartitionWriter(ch, tables["mp2_daily"], job, batch_rows=batch_rows))
        variants_writer = None
        if ensemble is not None:  # staged first: a variants table the schema refuses stops the export before MP2
            variants_writer = writers.enter_context(PartitionWriter(ch, mp2_variants_table(), job))
            variants_writer.write(variant_rows(ensemble))
        per_airframe = False
        for airframe, daily in chunks:
            if airframe:
                per_airframe = True
                airframe_writer.write(airframe)
            daily_writer.write(daily)
            del airframe, daily  # let this chunk go before the next one is read
        reports = []
        if per_airframe:
            expected = airframes * members * days if airframes is not None and days is not None else None
            reports.append(airframe_writer.commit(expected))
        else:
            airframe_writer.abort()
        reports.append(daily_writer.commit())
        if variants_writer is not None:
            reports.append(variants_writer.commit(len(ensemble.variants)))  # type: ignore[union-attr]
        else:
            ch.command(f"ALTER TABLE {ch.database}.mp2_variants DROP PARTITION {partition_literal(job)}")
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
    ensemble: Ensemble | None = None,
) -> list[ExportReport]:
    """Write a job's MP2 held whole in memory (a local run); see :func:`export_mp2_chunks`."""
    return export_mp2_chunks(ch, job_id, [(airframe, daily)], airframes=airframes, days=days, batch_rows=batch_rows,
                             ensemble=ensemble)  # fmt: skip


def export_ensemble_mp2(
    ch: ClickHouse,
    job_id: str,
    airframe: Columns,
    daily: Columns,
    ensemble: Ensemble | None,
    *,
    airframes: int | None = None,
    days: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> list[ExportReport]:
    """A local run's MP2 with its ensemble (``lifecycle run --variants F --to-clickhouse``): MP2 and ``mp2_variants``.

    ``airframes`` is the fleet's size (``RunReport.airframes``); the row count checked is airframes x days x members.
    """
    return export_mp2(ch, job_id, airframe, daily, airframes=airframes, days=days, batch_rows=batch_rows,
                      ensemble=ensemble)  # fmt: skip
