"""A job's MP2 written from its result checkpoints by whoever asks: Parquet on this machine, or ClickHouse.

The checkpoint store is the fleet's shared medium, so the machine that submitted a job (or any other) reads the
job's MP2 chunk by chunk from it and writes it where it wants, with one chunk in memory at a time. A Parquet export
goes to a hidden folder beside ``out`` and is renamed to ``out`` only when every chunk is written
(:func:`simfleet.shared.outputs.atomic_output`), so an export that fails or is interrupted leaves no ``out`` that
looks complete. A ClickHouse export replaces the job's partitions
atomically, like the workers' export stage (with ``mp2_variants`` for an ensemble job). An ensemble job's MP2 holds
every member's rows, told apart by ``variant_id`` and ``replication``, in both forms.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.shared.errors import CheckpointError, JobFailed
from simfleet.shared.jobs import JobRecord
from simfleet.shared.lifecycle_contract import MP2_FOLDERS
from simfleet.shared.outputs import atomic_output

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet

Columns = dict[str, Any]


def _chunks(fleet: Fleet, record: JobRecord) -> Iterator[tuple[int, Columns, Columns]]:
    checkpoints = fleet.checkpoints()
    try:
        for ref, payload in checkpoints.result_chunks(record.job_id, record.days):
            yield ref.first_day, payload["airframe"], payload["daily"]
    except CheckpointError as exc:
        raise CheckpointError(
            f"job {record.job_id}: its MP2 cannot be read back ({exc}); the workers' export stage computes a lost "
            "chunk again, so submit the job again (or with a ClickHouse sink)"
        ) from exc


def export_job(fleet: Fleet, record: JobRecord, *, out: str | Path | None = None,
               clickhouse_dsn: str | None = None) -> str:  # fmt: skip
    """Write the MP2 of a finished job; return where it went (a folder, or a DSN without password).

    Args:
        fleet: the fleet client (its checkpoint store and settings).
        record: the job's record (the job must be done).
        out: a folder on this machine for ``mp2/`` and ``mp2_daily/`` Parquet parts: new, empty, or an earlier
            MP2 output, which is replaced whole once every chunk is written.
        clickhouse_dsn: with ``out`` unset, the ClickHouse to write to (default: this machine's ``clickhouse_dsn``).

    Raises:
        JobFailed: the job is not done.
        ConfigError: ``out`` cannot be written, or holds files other than an earlier MP2 output.
        CheckpointError: a chunk of MP2 is missing or unreadable.
    """
    if record.state != "done":
        raise JobFailed(record.job_id, f"is {record.state}; only a done job has all of its MP2", error_type="NotDone")
    full = record.spec.log == "full"
    if out is not None:
        return _to_parquet(fleet, record, Path(out))
    from simfleet.shared.clickhouse.migrations import open_db
    from simfleet.shared.clickhouse.mp2 import export_mp2_chunks

    with open_db(clickhouse_dsn or fleet.settings.clickhouse_dsn) as ch:
        chunks = ((airframe, daily) for _, airframe, daily in _chunks(fleet, record))
        export_mp2_chunks(ch, record.job_id, chunks, airframes=record.airframes if full else None, days=record.days,
                          ensemble=record.spec.ensemble)  # fmt: skip
        return ch.dsn.redacted


def _to_parquet(fleet: Fleet, record: JobRecord, out: Path) -> str:
    from simfleet.worker.lifecycle.sinks import ParquetSink

    with atomic_output(out, flag="out", owned=MP2_FOLDERS) as staging:
        sink = ParquetSink(staging)
        for first_day, airframe, daily in _chunks(fleet, record):
            sink.write(first_day, airframe, daily)
        sink.close()
    return str(out.absolute())
