"""The messages of a lifecycle job: its spec, the message of each stage, the progress it reports, its summary.

A job is published by a producer as a :class:`JobSpec` (kept in the job's record in Redis) and the first
:class:`StageMessage` (``load``). Every stage, once done, records and publishes the message of the next one; the
watchdog re-publishes the job's due message from the record when its owner dies. Nothing in a message is a path:
inputs travel as a blob in the fleet's checkpoint store (:class:`StoreInputs`) or as a ClickHouse version
(:class:`ClickHouseInputs`); MP2 goes to ClickHouse (:class:`ClickHouseSink`) or stays in the job's result
checkpoints (:class:`NoSink`), from where any machine exports it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from simfleet.shared.lifecycle_contract import MAX_DAYS, U32
from simfleet.shared.messages import Message, WorkId
from simfleet.shared.messages.plan import Ensemble

Days = Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)]
"""A horizon or a chunk in days: 1 to ``MAX_DAYS`` (the day index is a UInt16 in MP2)."""
Count = Annotated[int, msgspec.Meta(ge=0)]
VersionId = Annotated[int, msgspec.Meta(ge=0, le=U32)]
"""An inputs version number: ClickHouse's ``UInt32``."""
Backend = Literal["numpy", "cupy", "flamegpu", "numba"]
LogMode = Literal["full", "aggregates"]
Priority = Literal["high", "normal", "background"]
Stage = Literal["load", "create", "execute", "export"]
DEFAULT_EXPORT_BATCH_ROWS = 2_000_000
"""Rows per ClickHouse insert unless a sink names another (the fastest measured on chDB)."""


class StoreInputs(Message, tag="store", tag_field="kind", frozen=True):
    """Inputs validated by the producer and written to the fleet's checkpoint store as the job's ``environment``.

    Attributes:
        key: the blob's key in the store (``<job_id>/environment-...``).
        sha256: the blob's checksum, checked before it is trusted.
    """

    key: str
    sha256: str


class ClickHouseInputs(Message, tag="clickhouse", tag_field="kind", frozen=True):
    """Inputs imported into ClickHouse as a version (``simfleet db import-inputs``).

    Attributes:
        version_date: the version's first simulated day.
        version_id: the version's number on that date.
        dsn: a ClickHouse server to read from; empty means the worker's own ``clickhouse_dsn`` (no credentials in
            messages unless the caller names a DSN).
    """

    version_date: dt.date
    version_id: VersionId
    dsn: str = ""


class NoSink(Message, tag="none", tag_field="kind", frozen=True):
    """MP2 stays in the job's result checkpoints (``simfleet job export ID`` writes it anywhere later)."""


class ClickHouseSink(Message, tag="clickhouse", tag_field="kind", frozen=True):
    """MP2 into ClickHouse, one partition per job in ``mp2`` and ``mp2_daily`` (and ``mp2_variants`` for an ensemble).

    Attributes:
        dsn: a ClickHouse server; empty means the worker's own ``clickhouse_dsn``.
        batch_rows: rows per insert.
    """

    dsn: str = ""
    batch_rows: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_EXPORT_BATCH_ROWS


Inputs = StoreInputs | ClickHouseInputs
Sink = NoSink | ClickHouseSink


class JobSpec(Message, frozen=True):
    """What a lifecycle job is: the one place its options and their defaults are declared.

    Attributes:
        job_id: the job's id (the rule of :mod:`simfleet.shared.ids`: 1 to 64 of ``A-Z a-z 0-9 . _ -``).
        inputs: where its inputs are.
        days: the horizon in days.
        chunk_days: days per execute stage (a checkpoint at the end of each).
        persistent: keep the simulation alive in the owner's memory between stages; ``False`` restores it from the
            checkpoints at every stage (the fallback mode).
        sink: where MP2 goes.
        backend: the lifecycle backend; ``None`` means the worker's ``gpu_worker.backend``.
        log: ``full`` (MP2 per airframe and day) or ``aggregates`` (per type and day only).
        priority: the Celery priority class of every stage.
        ensemble: plan variants x replications with their maintenance options (docs/lifecycle.md, "Planning"), run
            as one stacked simulation; ``None`` is today's single deterministic run. Checked against the inputs'
            horizon when the job is submitted, and again when a worker loads it.
    """

    job_id: WorkId
    inputs: Inputs
    days: Days
    chunk_days: Days = 365
    persistent: bool = True
    sink: Sink = ClickHouseSink()
    backend: Backend | None = None
    log: LogMode = "full"
    priority: Priority = "normal"
    ensemble: Ensemble | None = None

    @property
    def members(self) -> int:
        """Runs stacked in the job: variants x replications (1 without an ensemble)."""
        return 1 if self.ensemble is None else self.ensemble.members

    def chunk_ends(self) -> list[int]:
        """The last day + 1 of every execute stage, in order."""
        return [min(self.days, end) for end in range(self.chunk_days, self.days + self.chunk_days, self.chunk_days)]

    def stage_of(self, seq: int) -> tuple[Stage, int]:
        """The stage at position ``seq`` of the job, and the day an execute stage runs to (``0`` otherwise).

        Stage 0 is load, 1 create, then one execute per chunk, then export.
        """
        ends = self.chunk_ends()
        if seq == 0:
            return "load", 0
        if seq == 1:
            return "create", 0
        if 2 <= seq < 2 + len(ends):
            return "execute", ends[seq - 2]
        if seq == 2 + len(ends):
            return "export", 0
        raise ValueError(f"job {self.job_id} has no stage {seq} (it has {3 + len(ends)})")

    @property
    def stages(self) -> int:
        """How many stages the job has."""
        return 3 + len(self.chunk_ends())


class StageMessage(Message, frozen=True):
    """The message of one stage of a job: it says which stage, for which epoch, and what came before.

    A worker runs it only while ``epoch`` is the job's epoch and ``seq`` the job's next stage, so a copy sent by an
    owner that lost the job, a duplicate, or a message from an earlier run of the stage is refused.

    Attributes:
        job_id: the job.
        epoch: the job's epoch when the message was sent (bumped when ownership moves).
        seq: the stage's position in the job (see :meth:`JobSpec.stage_of`).
        stage: the stage, which must agree with ``seq`` and with the task that receives the message.
        until: for an execute stage, the day it runs to (exclusive).
        timings_s: seconds spent so far, by kind (load, create, run, checkpoint, restore, export).
        restores: how often the job was restored from checkpoints so far.
    """

    job_id: WorkId
    epoch: Count
    seq: Count
    stage: Stage
    until: Count = 0
    timings_s: dict[str, float] = msgspec.field(default_factory=dict)
    restores: Count = 0


class StageProgress(Message, frozen=True):
    """What a running stage reports (Celery PROGRESS meta, and the job record's last figures).

    Attributes:
        job_id: the job.
        stage: the stage reporting.
        day: days simulated so far.
        days: the horizon.
        airframes: the fleet's size (of one run: an ensemble simulates ``variants x replications`` copies).
        variants: the ensemble's plan variants (1 without an ensemble).
        replications: runs of each variant (1 without an ensemble).
        percent: ``day`` over ``days``.
        days_per_s: simulated days per second in this stage.
        rss_mb: the worker process's resident memory.
        device_memory_mb: device memory the backend holds (``None`` on the host).
        worker: the worker's node name.
        pid: its pool process.
        checkpoint_bytes: the size of the checkpoints written at the chunk's end (``None`` before).
        checkpoint_s: the time they took.
    """

    job_id: WorkId
    stage: Stage
    day: Count
    days: Count
    airframes: Count
    percent: float
    days_per_s: float
    rss_mb: float
    device_memory_mb: float | None
    worker: str
    pid: int
    checkpoint_bytes: int | None = None
    checkpoint_s: float | None = None
    variants: Count = 1
    replications: Count = 1


class SinkTarget(Message, frozen=True):
    """Where a job's MP2 went: the sink's kind and its target (a DSN without password; empty for ``none``)."""

    kind: Literal["none", "clickhouse", "parquet"]
    target: str = ""


class MemberSummary(Message, frozen=True):
    """What one member of an ensemble job (a variant's replication) did over the run.

    Attributes:
        variant_id: the variant's position in the ensemble (``variant_id`` in MP2).
        variant: its name.
        replication: the replication (``replication`` in MP2).
        transitions: count of each transition over the run (``"2->4"``).
        status_counts_end: airframes in each status after the last day.
        shortfall_days: per aircraft type, the days on which the target could not be met.
    """

    variant_id: Count
    variant: str
    replication: Count
    transitions: dict[str, int]
    status_counts_end: dict[int, int]
    shortfall_days: dict[str, int]


class JobSummary(Message, frozen=True):
    """A finished job: the model's figures, where MP2 went, and what it cost.

    Attributes:
        job_id: the job.
        airframes: the fleet's size (of one run).
        days: the horizon.
        log: ``full`` or ``aggregates``.
        transitions: count of each transition over the run (``"2->4"``); an ensemble's adds up its members.
        status_counts_end: airframes in each status after the last day.
        shortfall_days: per aircraft type, the days on which the target could not be met.
        airframe_rows: MP2 rows per airframe and day written.
        sink: where MP2 went.
        timings_s: seconds by kind.
        end_to_end_s: from submission to the summary.
        worker: the worker that finished it.
        epoch: the epoch it finished at (0 unless ownership moved).
        restores: how often it was restored from checkpoints.
        members: for an ensemble job, each member's figures (variant-major); empty for a single run.
    """

    job_id: WorkId
    airframes: Count
    days: Count
    log: LogMode
    transitions: dict[str, int]
    status_counts_end: dict[int, int]
    shortfall_days: dict[str, int]
    airframe_rows: Count
    sink: SinkTarget
    timings_s: dict[str, float]
    end_to_end_s: float
    worker: str
    epoch: Count
    restores: Count
    members: list[MemberSummary] = msgspec.field(default_factory=list)


class JobFailure(Message, frozen=True):
    """Why a job ended without a summary: the stage, the error's type and message (or an operator's cancel)."""

    stage: str
    error_type: str
    message: str


__all__ = [
    "ClickHouseInputs",
    "ClickHouseSink",
    "Inputs",
    "JobFailure",
    "JobSpec",
    "JobSummary",
    "MemberSummary",
    "NoSink",
    "Sink",
    "SinkTarget",
    "StageMessage",
    "StageProgress",
    "StoreInputs",
]
