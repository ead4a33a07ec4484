"""Lifecycle jobs from the producer's side: publish the four stages as one chain, follow the job, get its summary.

The chain is load -> create -> execute x ceil(days / chunk_days) -> export. Task ids are ``<job>-load``,
``<job>-create``, ``<job>-run-<k>`` and the job id itself for export, whose result is the job's summary. The job
record in Redis (:mod:`simfleet.shared.jobs`) says where the job stands whichever worker runs it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import chain

from simfleet.shared.celery_app import LIFECYCLE_CREATE, LIFECYCLE_EXECUTE, LIFECYCLE_EXPORT, LIFECYCLE_LOAD
from simfleet.shared.clickhouse.client import portable_dsn
from simfleet.shared.errors import ConfigError, JobFailed
from simfleet.shared.jobs import JobView
from simfleet.shared.lifecycle_contract import LOG_MODES
from simfleet.shared.settings import PRIORITIES

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet



@dataclass(frozen=True)
class JobProgress:
    """Where a job stands: its record's state and day, and the running stage's latest figures."""

    job_id: str
    state: str
    day: int
    days: int
    owner: str
    epoch: int
    figures: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def finished(self) -> bool:
        """Done or failed."""
        return self.state in ("done", "failed")

    @property
    def percent(self) -> float:
        """Days simulated over the horizon, in percent."""
        day = int(self.figures.get("day", self.day))
        return 100.0 * day / self.days if self.days else 0.0

    @property
    def label(self) -> str:
        """One line for a progress bar: state, day, days per second (the state alone until load knows the days)."""
        if not self.days:
            return self.state
        text = f"{self.state}, day {self.figures.get('day', self.day)}/{self.days}"
        if self.figures.get("days_per_s"):
            text += f", {self.figures['days_per_s']:,.0f} days/s"
        return text


class LifecycleJob:
    """A handle on a lifecycle job published to the fleet."""

    def __init__(self, fleet: Fleet, job_id: str) -> None:
        self.fleet = fleet
        self.id = job_id

    def record(self) -> JobView:
        """The job's record in Redis."""
        view = self.fleet.jobs.get(self.id)
        if view is None:
            raise JobFailed(self.id, "not known to this fleet (expired, or never submitted)", error_type="UnknownJob")
        return view

    def progress(self) -> JobProgress:
        """The record, with the figures of a running execute stage when there is one."""
        view = self.record()
        figures = dict(view.progress)
        for task_id in self.fleet.jobs.task_ids(self.id):
            meta = self.fleet.app.backend.get_task_meta(task_id)
            if meta.get("status") == "PROGRESS" and isinstance(meta.get("result"), dict):
                figures = meta["result"]
        days = view.days or int(view.spec.get("days") or 0)
        return JobProgress(self.id, view.state, view.day, days, view.owner, view.epoch, figures, view.error)

    def result(self, timeout: float | None = None, poll_s: float = 0.2, on_progress: Any = None) -> dict[str, Any]:
        """Wait for the job's summary (the export stage's result); call ``on_progress(JobProgress)`` meanwhile.

        Raises:
            JobFailed: a stage failed (the message says which and why) or ``timeout`` passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.progress()
            if on_progress is not None:
                on_progress(progress)
            if progress.state == "failed":
                raise JobFailed(self.id, progress.error)
            if progress.state == "done":
                view = self.record()
                if view.result is not None:
                    return view.result
            if deadline is not None and time.monotonic() > deadline:
                raise JobFailed(self.id, f"did not finish within {timeout} s (state {progress.state})",
                                error_type="Timeout", timed_out=True)  # fmt: skip
            time.sleep(poll_s)


def job_spec(
    job_id: str,
    inputs: str | Path | dict[str, Any],
    *,
    days: int | None,
    chunk_days: int,
    persistent: bool,
    out: str | Path | None,
    sink: dict[str, Any] | None,
    backend: str | None,
    log: str,
) -> dict[str, Any]:
    """The plain-data spec a job's stages share (validated here, before anything is published)."""
    if chunk_days < 1:
        raise ConfigError(f"must be at least 1, got {chunk_days}", key="chunk_days")
    if days is not None and days < 1:
        raise ConfigError(f"must be a positive number of days, got {days}", key="days")
    if log not in LOG_MODES:
        raise ConfigError(f"must be full or aggregates, got {log!r}", key="log")
    sink = dict(sink) if sink else None
    source = dict(inputs) if isinstance(inputs, dict) else {"kind": "directory", "path": str(Path(inputs).resolve())}
    if source.get("kind") == "directory" and not Path(source["path"]).is_dir():
        raise ConfigError(f"not a directory: {source['path']}", key="inputs")
    if out is not None:
        sink = {"kind": "parquet", "path": str(Path(out).resolve())}
    # The workers may run elsewhere (another directory, another machine): relative paths are resolved here. A DSN
    # is only sent when the caller names one; otherwise workers use their own (messages then carry no password).
    for part in (source, sink or {}):
        if part.get("kind") == "clickhouse" and part.get("dsn"):
            part["dsn"] = portable_dsn(part["dsn"])
    return {
        "job_id": job_id,
        "epoch": 0,
        "inputs": source,
        "days": days,
        "chunk_days": chunk_days,
        "persistent": persistent,
        "sink": sink or {"kind": "none"},
        "backend": backend,
        "log": log,
    }


def publish_lifecycle(fleet: Fleet, spec: dict[str, Any], *, horizon: int, priority: str) -> LifecycleJob:
    """Record the job and publish its chain of stages."""
    if priority not in PRIORITIES:
        raise ConfigError(f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}", key="priority")
    job_id = spec["job_id"]
    level = PRIORITIES[priority]
    chunk = int(spec["chunk_days"])
    ends = [min(horizon, chunk * (k + 1)) for k in range(math.ceil(horizon / chunk))]
    app = fleet.app
    stages = [
        app.signature(LIFECYCLE_LOAD, args=(spec,), kwargs={"job_id": job_id}, priority=level).set(
            task_id=f"{job_id}-load"
        ),
        app.signature(LIFECYCLE_CREATE, kwargs={"job_id": job_id}, priority=level).set(task_id=f"{job_id}-create"),
        *(
            app.signature(LIFECYCLE_EXECUTE, kwargs={"job_id": job_id, "until": end}, priority=level).set(
                task_id=f"{job_id}-run-{k}"
            )
            for k, end in enumerate(ends)
        ),
        app.signature(LIFECYCLE_EXPORT, kwargs={"job_id": job_id}, priority=level).set(task_id=job_id),
    ]
    fleet.jobs.create(job_id, spec, task_ids=[s.id for s in stages])
    chain(*stages).apply_async()
    return LifecycleJob(fleet, job_id)


def new_job_id() -> str:
    """A fresh job id."""
    return f"lc-{uuid.uuid4().hex[:16]}"
