"""Lifecycle jobs from the producer's side: submit one, follow it, wait for its summary, cancel, export, delete.

Submitting records the job in Redis (:mod:`simfleet.shared.jobs`) and publishes its first stage; every stage then
publishes the next one itself, so a job needs nothing more from the producer. Nothing the producer sends is a path:

- an inputs directory is read and validated here (errors name the file, row and field before anything is sent),
  then travels as a blob in the fleet's checkpoint store (``via="store"``, the default), or is imported into
  ClickHouse first and travels as that version (``via="clickhouse"``, the ETL's normal way);
- MP2 goes to ClickHouse (the workers' ``clickhouse_dsn`` unless a sink names one), or stays in the job's result
  checkpoints, from where :meth:`LifecycleJob.export` (``simfleet job export ID --out DIR``) writes it on the
  machine that asks, after the job.

A job may carry an ensemble (plan variants x replications, docs/lifecycle.md "Planning"): a variants file, plain data
or an :class:`~simfleet.shared.messages.plan.Ensemble`, decoded and checked against the inputs' horizon here, before
anything is sent, and then run by the workers as one stacked simulation.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from simfleet.producer.fleet.arguments import choice, flag, instance, seconds, time_limit, whole, work_id
from simfleet.shared.celery_app import LIFECYCLE_LOAD, publish_stage, stage_queues
from simfleet.shared.errors import ConfigError, FleetUnavailable, JobFailed, MessageError
from simfleet.shared.jobs import JobRecord, simulated_day
from simfleet.shared.lifecycle_contract import BACKENDS, LOG_MODES, MAX_DAYS, LifecycleInputs
from simfleet.shared.messages import decode
from simfleet.shared.messages.lifecycle import (
    ClickHouseInputs,
    ClickHouseSink,
    Inputs,
    JobSpec,
    JobSummary,
    NoSink,
    Sink,
    StageProgress,
    StoreInputs,
)
from simfleet.shared.messages.plan import Ensemble
from simfleet.shared.settings import PRIORITIES

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet

OnProgress = Callable[["JobProgress"], None]


@dataclass(frozen=True)
class JobProgress:
    """Where a job stands: its record's state and day, and the running stage's latest figures.

    Attributes:
        job_id: the job.
        state: queued, loading, loaded, created, running, exporting, done, failed or cancelled; ``reconnecting``
            while the fleet's Redis cannot be reached (the job goes on; the handle waits).
        day: days simulated and checkpointed.
        days: the horizon.
        owner: the worker holding it (empty when none does).
        epoch: its fencing epoch (moves when a worker takes it over).
        figures: the running stage's last report, if any.
        error: why it failed or was cancelled.
        airframes: the fleet's size (0 until loaded).
        ensemble: ``(variants, replications)`` of an ensemble job, ``None`` for a single run.
    """

    job_id: str
    state: str
    day: int
    days: int
    owner: str = ""
    epoch: int = 0
    figures: StageProgress | None = None
    error: str = ""
    airframes: int = 0
    ensemble: tuple[int, int] | None = None

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled."""
        return self.state in ("done", "failed", "cancelled")

    @property
    def simulated_day(self) -> int:
        """The day the job has reached: the running stage's last report, else the checkpointed ``day``."""
        return simulated_day(self.day, self.figures)

    @property
    def percent(self) -> float:
        """The day reached over the horizon, in percent."""
        return 100.0 * self.simulated_day / self.days if self.days else 0.0

    @property
    def label(self) -> str:
        """One line for a progress bar: state, day, days per second."""
        if self.state == "reconnecting":
            return "the fleet's Redis is unreachable: reconnecting (the job goes on)"
        text = f"{self.state}, day {self.simulated_day}/{self.days}"
        if self.ensemble is not None:
            text += f", {ensemble_size(*self.ensemble, self.airframes)}"
        if self.figures is not None and self.figures.days_per_s:
            text += f", {self.figures.days_per_s:,.0f} days/s"
        return text


class LifecycleJob:
    """A handle on a lifecycle job on the fleet (published here or by anyone)."""

    def __init__(self, fleet: Fleet, job_id: str) -> None:
        self.fleet = fleet
        self.id = work_id(job_id, key="job_id")

    def __repr__(self) -> str:
        return f"LifecycleJob({self.id!r})"

    def record(self) -> JobRecord:
        """The job's record in Redis.

        Raises:
            JobFailed: no such job (never submitted, deleted, or expired).
            FleetUnavailable: Redis cannot be reached.
        """
        with self.fleet.translate():
            record = self.fleet.records.get(self.id)
        if record is None:
            raise JobFailed(self.id, "not known to this fleet (expired, deleted, or never submitted)",
                            error_type="UnknownJob")  # fmt: skip
        return record

    def progress(self) -> JobProgress:
        """Where the job stands now: its record, with the running stage's last figures.

        A stage writes each PROGRESS report into the record as well as into its Celery state, so the record alone
        answers (one read a poll).
        """
        record = self.record()
        error = record.failure.message if record.failure else ""
        ensemble = record.spec.ensemble
        return JobProgress(self.id, record.state, record.day, record.days, record.owner, record.epoch, record.progress,
                           error, record.airframes or (record.progress.airframes if record.progress else 0),
                           None if ensemble is None else (len(ensemble.variants), ensemble.replications))  # fmt: skip

    def finished(self) -> bool:
        """Whether the job has ended (done, failed or cancelled)."""
        return self.progress().finished

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.2,
             on_progress: OnProgress | None = None) -> JobSummary:  # fmt: skip
        """Wait for the job's summary; call ``on_progress(JobProgress)`` meanwhile.

        A Redis outage does not end the wait: progress reports the state ``reconnecting`` until Redis answers again.

        Raises:
            JobFailed: it failed or was cancelled (``error_type``, ``stage`` and ``reason`` say how), or ``timeout``
                passed (``timed_out`` is true; the job goes on).
        """
        timeout = time_limit(timeout)
        poll_s = seconds(poll_s, key="poll_s")
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            try:
                progress = self.progress()
            except FleetUnavailable as exc:
                progress = JobProgress(self.id, "reconnecting", 0, 0, error=str(exc))
            if on_progress is not None:
                on_progress(progress)
            if progress.finished:
                return self._outcome()
            if time.monotonic() > deadline:
                raise JobFailed(self.id, f"did not finish within {timeout} s (state {progress.state}); it goes on",
                                error_type="Timeout", timed_out=True)  # fmt: skip
            time.sleep(poll_s)

    result = wait

    def _outcome(self) -> JobSummary:
        record = self.record()
        if record.state == "done" and record.result is not None:
            return record.result
        failure = record.failure
        if failure is None:
            raise JobFailed(self.id, f"ended {record.state} without a reason", error_type="Unknown")
        raise JobFailed(self.id, failure.message, stage=failure.stage, error_type=failure.error_type)

    def cancel(self, reason: str = "cancelled by an operator") -> bool:
        """Cancel the job (its owner stops at its next write); whether it was still running."""
        if not isinstance(reason, str):
            raise ConfigError(f"must be a string, got {type(reason).__name__}", key="reason")
        with self.fleet.translate():
            return self.fleet.records.cancel(self.id, reason)

    def delete(self) -> int:
        """Remove an ended job's record and checkpoints; return how many checkpoint blobs went.

        Raises:
            JobFailed: the job has not ended (cancel it first) or is unknown.
        """
        self.record()
        with self.fleet.translate():
            try:
                self.fleet.records.delete(self.id)
            except ValueError as exc:
                raise JobFailed(self.id, str(exc), error_type="StillRunning") from exc
            return self.fleet.checkpoints().drop(self.id)

    def export(self, out: str | Path | None = None, *, clickhouse_dsn: str | None = None) -> str:
        """Write the job's MP2 from its result checkpoints; return where it went.

        As Parquet under ``out`` on this machine, or into ClickHouse (see
        :func:`simfleet.producer.fleet.export.export_job`).
        """
        from simfleet.producer.fleet.export import export_job

        return export_job(self.fleet, self.record(), out=out, clickhouse_dsn=clickhouse_dsn)


def ensemble_size(variants: int, replications: int, airframes: int) -> str:
    """``2 variants x 3 replications x 60 airframes``: what an ensemble job simulates (airframes once known)."""
    text = f"{variants} variant{'s' * (variants != 1)} x {replications} replication{'s' * (replications != 1)}"
    return text + (f" x {airframes} airframes" if airframes else "")


def new_job_id() -> str:
    """A fresh job id."""
    return f"lc-{uuid.uuid4().hex[:16]}"


def resolve_inputs(
    fleet: Fleet,
    job_id: str,
    inputs: str | Path | Inputs | LifecycleInputs,
    *,
    days: int | None,
    via: Literal["store", "clickhouse"],
    version_id: int | None = None,
) -> tuple[Inputs, int]:
    """The inputs a job's message names, and its horizon.

    A directory is validated here (or inputs already validated are taken), then written to the checkpoint store (or
    imported into ClickHouse as a new version); a ClickHouse version or an inputs blob is taken as it is.

    Raises:
        InputError, ConfigError: the directory's inputs are invalid (naming the file, row and field).
    """
    if isinstance(inputs, StoreInputs | ClickHouseInputs):
        if days is None:
            raise ConfigError("days is required for inputs that are not a directory", key="days")
        return inputs, days
    from simfleet.worker.lifecycle.inputs import inputs_payload, load_inputs

    loaded = inputs if isinstance(inputs, LifecycleInputs) else load_inputs(Path(inputs), days=days)
    if via == "clickhouse":
        from simfleet.shared.clickhouse.inputs import import_inputs
        from simfleet.shared.clickhouse.migrations import open_db

        number = version_id if version_id is not None else int(time.time())
        with open_db(fleet.settings.clickhouse_dsn) as ch:
            import_inputs(ch, loaded, number)
        version = ClickHouseInputs(version_date=loaded.version_date, version_id=number)
        return version, loaded.days
    with fleet.translate():
        ref = fleet.checkpoints().write(job_id, "environment", 0, inputs_payload(loaded))
    return StoreInputs(key=ref.key, sha256=ref.sha256), loaded.days


def _checked_sink(sink: object) -> Sink:
    """``"clickhouse"``, ``"none"`` or a sink message, as a sink message whose fields are in range."""
    if isinstance(sink, str):
        named = choice(sink, key="sink", choices=("clickhouse", "none"))
        return ClickHouseSink() if named == "clickhouse" else NoSink()
    instance(sink, (NoSink, ClickHouseSink), key="sink", accepted="'clickhouse', 'none', a ClickHouseSink or a NoSink")
    return _round_trip(sink, "sink")  # type: ignore[return-value]


def _round_trip(message: object, key: str) -> object:
    """A message built by a caller (whose fields msgspec does not check on construction), decoded as a worker would."""
    try:
        return decode(type(message), msgspec.to_builtins(message), what=key)
    except (MessageError, TypeError) as exc:
        raise ConfigError(str(exc), key=key) from exc


@dataclass(frozen=True)
class JobOptions:
    """The options of a lifecycle job once checked: Python ints and bools, a sink message, an id."""

    inputs: str | os.PathLike[str] | Inputs
    days: int | None
    chunk_days: int
    persistent: bool
    sink: Sink
    backend: str | None
    log: str
    priority: str
    job_id: str
    via: Literal["store", "clickhouse"]
    ensemble: Ensemble | None = None
    ensemble_source: str = "ensemble"


def checked_ensemble(ensemble: object) -> tuple[Ensemble | None, str]:
    """An ``ensemble`` argument decoded, and the name its errors give: a variants file's path, or ``ensemble``.

    Raises:
        ConfigError: not an Ensemble, a mapping or a path, or a file or mapping that does not decode (naming the
            file and the key).
    """
    from simfleet.worker.lifecycle.variants import load_variants, parse_variants

    if ensemble is None:
        return None, "ensemble"
    if isinstance(ensemble, Ensemble | dict):  # parse_variants checks a caller's Ensemble as if it were decoded
        return parse_variants(ensemble, "ensemble"), "ensemble"
    if isinstance(ensemble, str | os.PathLike):
        return load_variants(Path(ensemble)), str(ensemble)
    raise ConfigError(f"must be an Ensemble, a mapping or the path of a variants file, got {type(ensemble).__name__}",
                      key="ensemble")  # fmt: skip


def check_options(
    *,
    inputs: object,
    days: object,
    chunk_days: object,
    persistent: object,
    sink: object,
    backend: object,
    log: object,
    priority: object,
    job_id: object,
    via: object,
    ensemble: object = None,
) -> JobOptions:
    """Every option of :func:`submit`, checked and normalised; nothing is read or sent.

    Raises:
        ConfigError: an option of the wrong type or out of its range, naming it and what it accepts.
    """
    checked: str | os.PathLike[str] | Inputs
    if isinstance(inputs, StoreInputs | ClickHouseInputs):
        checked = _round_trip(inputs, "inputs")  # type: ignore[assignment]
        if days is None:
            raise ConfigError(f"is required for inputs that are not a directory (1 to {MAX_DAYS})", key="days")
    elif isinstance(inputs, str | os.PathLike):
        checked = inputs
    else:
        raise ConfigError(f"must be an inputs directory (str or Path), a StoreInputs or a ClickHouseInputs, got "
                          f"{type(inputs).__name__}", key="inputs")  # fmt: skip
    plan, plan_source = checked_ensemble(ensemble)
    return JobOptions(
        inputs=checked,
        days=None if days is None else whole(days, key="days", high=MAX_DAYS),
        chunk_days=whole(chunk_days, key="chunk_days", high=MAX_DAYS),
        persistent=flag(persistent, key="persistent"),
        sink=_checked_sink(sink),
        backend=None if backend is None else choice(backend, key="backend", choices=BACKENDS),
        log=choice(log, key="log", choices=LOG_MODES),
        priority=choice(priority, key="priority", choices=tuple(PRIORITIES)),
        job_id=new_job_id() if job_id is None else work_id(job_id, key="job_id"),
        via="store" if choice(via, key="via", choices=("store", "clickhouse")) == "store" else "clickhouse",
        ensemble=plan,
        ensemble_source=plan_source,
    )


def submit(
    fleet: Fleet,
    *,
    inputs: str | Path | Inputs,
    days: int | None = None,
    chunk_days: int = 365,
    persistent: bool = True,
    sink: Literal["clickhouse", "none"] | Sink = "clickhouse",
    backend: str | None = None,
    log: str = "full",
    priority: str = "normal",
    job_id: str | None = None,
    via: Literal["store", "clickhouse"] = "store",
    ensemble: Ensemble | dict[str, object] | str | os.PathLike[str] | None = None,
) -> LifecycleJob:
    """Validate, record and publish a lifecycle job (see :meth:`Fleet.run_lifecycle` for the arguments).

    Every option is checked (:func:`check_options`) before the inputs are read, and the inputs (and the ensemble
    against their horizon, when it is known here) before anything is written to the fleet.

    Raises:
        ConfigError: an option is of the wrong type or out of its range (naming it); nothing was published.
        InputError: the inputs directory is invalid.
        FleetUnavailable: Redis cannot be reached.
    """
    options = check_options(inputs=inputs, days=days, chunk_days=chunk_days, persistent=persistent, sink=sink,
                            backend=backend, log=log, priority=priority, job_id=job_id, via=via,
                            ensemble=ensemble)  # fmt: skip
    job_id, days = options.job_id, options.days
    given: Inputs | LifecycleInputs
    if isinstance(options.inputs, StoreInputs | ClickHouseInputs):
        given = options.inputs
    else:  # a directory: its inputs are checked here, before anything else
        from simfleet.worker.lifecycle.inputs import load_inputs

        given = load_inputs(Path(options.inputs), days=days)
    if options.ensemble is not None:
        _check_against_inputs(options, given)
    if fleet.jobs_exists(job_id):
        raise ConfigError(f"a job called {job_id} already exists", key="job_id")
    source, horizon = resolve_inputs(fleet, job_id, given, days=days, via=options.via)
    spec = JobSpec(job_id=job_id, inputs=source, days=horizon, chunk_days=options.chunk_days,
                   persistent=options.persistent, sink=options.sink, backend=options.backend,  # type: ignore[arg-type]
                   log=options.log, priority=options.priority, ensemble=options.ensemble)  # type: ignore[arg-type]  # fmt: skip
    with fleet.translate():
        try:
            first = fleet.records.create(spec)
        except ValueError as exc:
            raise ConfigError(str(exc), key="job_id") from exc
        publish_stage(fleet.app, first, stage_queues(fleet.settings)[LIFECYCLE_LOAD], spec.priority)
        fleet.records.mark_sent(job_id, first.epoch, first.seq)
    return LifecycleJob(fleet, job_id)


def _check_against_inputs(options: JobOptions, given: Inputs | LifecycleInputs) -> None:
    """Check the ensemble against the inputs' first day and horizon where they are known here.

    An inputs blob already in the store names neither: the worker's load stage checks it (the job fails there).
    """
    from simfleet.worker.lifecycle.variants import check_ensemble

    assert options.ensemble is not None
    if isinstance(given, LifecycleInputs):
        first, horizon = given.version_date, given.days
    elif isinstance(given, ClickHouseInputs) and options.days is not None:
        first, horizon = given.version_date, options.days
    else:
        return
    check_ensemble(options.ensemble, first, horizon, source=options.ensemble_source)


__all__ = ["JobOptions", "JobProgress", "LifecycleJob", "check_options", "checked_ensemble", "ensemble_size",
           "new_job_id", "resolve_inputs", "submit"]  # fmt: skip
