"""The four stages of a lifecycle job, as a GPU-role worker process runs them (Celery-free; the tasks are thin).

Each later stage receives a *handoff* from the one before: ``{"job_id", "epoch", "day", "timings"}``. Before doing
anything a stage checks the epoch: an epoch older than the job's is refused (:class:`StaleEpoch`): the message was
sent by an owner that has since lost the job. Then it takes the job's live session from this process's registry; if
this process does not hold the job at the current epoch (it was never here, the process was restarted, the session
was evicted, or the job runs without persistence) it restores it from the latest checkpoints and claims it (taking it
from another owner bumps the epoch). Every write (checkpoint references, progress, the result) is fenced by the
epoch.

- load: read and validate the inputs (a failure leaves no owner and no checkpoint), claim the job, build the
  environment and the backend, write the ``environment`` checkpoint (the validated inputs).
- create: create the population, write the ``population`` checkpoint.
- execute: step to the chunk's last day, reporting progress; write the chunk's MP2 as a ``result`` checkpoint, then
  the ``progress`` checkpoint (state at the chunk's end). A result chunk is published before the progress that
  follows it, so whatever progress is restored, the MP2 of every earlier day exists.
- export: hand the MP2 of every chunk, in day order, from the result checkpoints to the job's sink; record the
  summary, finish the job. MP2 is not kept in the session: a live job's memory stays flat however long it runs
  (holding a 20,000-airframe job's MP2 in memory was measured to slow its stepping fourfold).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import CheckpointError, ConfigError, StaleEpoch
from simfleet.shared.jobs import Jobs
from simfleet.shared.lifecycle_contract import TABLES, LifecycleInputs
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.backends.base import Columns
from simfleet.worker.lifecycle.environment import build_environment
from simfleet.worker.lifecycle.inputs import DirectorySource
from simfleet.worker.lifecycle.run import summarize
from simfleet.worker.lifecycle.sinks import ParquetSink
from simfleet.worker.lifecycle.validation import validate_inputs
from simfleet.worker.sessions import Session, SessionRegistry

log = logging.getLogger(__name__)
Report = Callable[[dict[str, Any]], None]
SLICE_DAYS = 30
"""Days stepped between two looks at the clock for PROGRESS reports."""



def load_job_inputs(spec: dict[str, Any], clickhouse_dsn: str = "") -> LifecycleInputs:
    """The validated inputs a job spec names: ``{"kind": "directory", "path"}`` or a ClickHouse version.

    A ClickHouse version is read from the spec's ``dsn`` if it names one, else from ``clickhouse_dsn`` (the
    worker's own setting: job messages need not carry credentials).


    Raises:
        InputError, ConfigError: the inputs are missing or invalid (the message names table, row and field).
    """
    source = spec["inputs"]
    kind = source.get("kind")
    if kind == "directory":
        inputs = DirectorySource(source["path"]).load()
    elif kind == "clickhouse":
        import datetime as dt

        from simfleet.shared.clickhouse.client import ClickHouse
        from simfleet.shared.clickhouse.inputs import ClickHouseSource

        with ClickHouse(source.get("dsn") or clickhouse_dsn) as ch:
            version_date = dt.date.fromisoformat(source["version_date"])
            inputs = ClickHouseSource(ch, version_date, int(source["version_id"])).load()
    else:
        raise ConfigError(f"unknown inputs kind {kind!r} (directory or clickhouse)", key="inputs.kind")
    if spec.get("days") is not None:
        inputs = replace(inputs, days=int(spec["days"]))
    validate_inputs(inputs)
    return inputs


def _inputs_payload(inputs: LifecycleInputs) -> dict[str, Any]:
    return {
        "version_date": inputs.version_date,
        "days": inputs.days,
        "tables": {name: dict(inputs.table(name)) for name in TABLES},
    }


def _inputs_from_payload(payload: dict[str, Any]) -> LifecycleInputs:
    tables = payload["tables"]
    return LifecycleInputs(payload["version_date"], int(payload["days"]), *(tables[name] for name in TABLES))


@dataclass
class ResultChunk:
    """MP2 of days ``first_day .. end_day - 1``, as read back from its result checkpoint."""

    first_day: int
    end_day: int
    airframe: Columns
    daily: Columns


def _concat(parts: list[Columns]) -> Columns:
    parts = [part for part in parts if part]
    if not parts:
        return {}
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


class Stages:
    """The stages as run by one worker process.

    Args:
        node: this worker's node name (the owner recorded for jobs it claims).
        queue: this worker's own queue (where later stages of its jobs are routed).
        jobs: job records and ownership.
        checkpoints: the checkpoint store and its references.
        registry: this process's live sessions.
        default_backend: the backend of jobs that do not name one.
        clickhouse_dsn: where ClickHouse inputs and sinks are, unless a job names its own DSN.
        progress_interval_s: the least time between two PROGRESS reports of an execute chunk.
    """

    def __init__(
        self,
        node: str,
        queue: str,
        jobs: Jobs,
        checkpoints: Checkpoints,
        registry: SessionRegistry,
        *,
        default_backend: str = "numpy",
        clickhouse_dsn: str = "",
        progress_interval_s: float = 1.0,
    ) -> None:
        self.node = node
        self.queue = queue
        self.jobs = jobs
        self.checkpoints = checkpoints
        self.registry = registry
        self.default_backend = default_backend
        self.clickhouse_dsn = clickhouse_dsn
        self.progress_interval_s = progress_interval_s
        self.process = psutil.Process()

    # ----------------------------------------------------------------------------------------------- stages

    def load(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Validate the inputs, claim the job, build its environment, checkpoint the inputs."""
        job_id = spec["job_id"]
        started = time.perf_counter()
        # A load message has no predecessor that could have lost the job: only the producer publishes it, so a
        # second copy is a redelivery (the process died mid-load) and simply loads again at the current epoch.
        current = self._check_epoch(job_id, self.jobs.epoch(job_id))
        self.jobs.update(job_id, current, state="loading")
        inputs = load_job_inputs(spec, self.clickhouse_dsn)  # raises before anything is claimed or written
        epoch = self.jobs.claim(job_id, self.node, self.queue, seen_epoch=current)
        session = self._build(job_id, epoch, spec, inputs)
        timings = {"load": time.perf_counter() - started}
        tick = time.perf_counter()
        self.checkpoints.save(
            job_id, "environment", 0, _inputs_payload(inputs), fence=self.jobs.fence(job_id, epoch)
        )
        session.inputs = None
        timings["checkpoint"] = time.perf_counter() - tick
        self.jobs.update(job_id, epoch, state="loaded", airframes=session.env.n, days=session.env.days)
        self._keep(session)
        log.info("job %s loaded: %d airframes, %d days (epoch %d)", job_id, session.env.n, session.env.days, epoch)
        return self._handoff(session, timings, {})

    def create(self, handoff: dict[str, Any]) -> dict[str, Any]:
        """Create the population (day 0) and checkpoint it."""
        session, timings = self._acquire(handoff)
        if not session.created:
            tick = time.perf_counter()
            session.backend.create()
            session.created = True
            timings["create"] = timings.get("create", 0.0) + time.perf_counter() - tick
            tick = time.perf_counter()
            self._save(session, "population", session.backend.state_dict())
            timings["checkpoint"] = timings.get("checkpoint", 0.0) + time.perf_counter() - tick
        self.jobs.update(session.job_id, session.epoch, state="created", day=session.backend.day)
        self._keep(session)
        return self._handoff(session, timings, handoff)

    def execute(self, handoff: dict[str, Any], until: int, report: Report | None = None) -> dict[str, Any]:
        """Step to day ``until`` (no further than the horizon), checkpoint MP2 and state, report progress."""
        session, timings = self._acquire(handoff)
        sim, env = session.backend, session.env
        until = min(until, env.days)
        first = sim.day
        if first >= until:
            self._keep(session)
            return self._handoff(session, timings, handoff)
        started = time.perf_counter()
        last_report = 0.0
        while sim.day < until:
            sim.step(min(SLICE_DAYS, until - sim.day))
            now = time.perf_counter()
            if report is not None and now - last_report >= self.progress_interval_s:
                last_report = now
                report(self._progress(session, first, now - started))
        airframe, daily = sim.read_chunk()
        run_s = time.perf_counter() - started
        tick = time.perf_counter()
        result_ref = self._save(session, "result", {"airframe": airframe, "daily": daily}, first_day=first, day=until)
        progress_ref = self._save(session, "progress", sim.state_dict())
        checkpoint_s = time.perf_counter() - tick
        timings["run"] = timings.get("run", 0.0) + run_s
        timings["checkpoint"] = timings.get("checkpoint", 0.0) + checkpoint_s
        figures = self._progress(session, first, run_s)
        figures.update(checkpoint_bytes=result_ref.size + progress_ref.size, checkpoint_s=checkpoint_s)
        self.jobs.update(session.job_id, session.epoch, state="running", day=until, progress=figures)
        if report is not None:
            report(figures)
        self._keep(session)
        log.info("job %s: days %d..%d in %.2f s, checkpoints %.2f s", session.job_id, first, until - 1, run_s,
                 checkpoint_s)  # fmt: skip
        return self._handoff(session, timings, handoff)

    def export(self, handoff: dict[str, Any]) -> dict[str, Any]:
        """Hand every MP2 chunk to the job's sink in day order; record the summary; finish the job."""
        session, timings = self._acquire(handoff)
        env, sim = session.env, session.backend
        if sim.day != env.days:
            raise CheckpointError(f"job {session.job_id}: export at day {sim.day}, the horizon is {env.days}")
        self.jobs.update(session.job_id, session.epoch, state="exporting")
        tick = time.perf_counter()
        sink = session.spec.get("sink") or {"kind": "none"}
        full = session.spec.get("log", "full") == "full"
        if sink.get("kind", "none") == "none":  # nothing to hand over: MP2 stays in the result checkpoints
            rows, target = env.n * env.days if full else 0, ""
        else:
            chunks = read_results(self.checkpoints, session.job_id, env.days)
            rows = sum(len(c.airframe.get("day", ())) for c in chunks)
            target = write_mp2(sink, session.job_id, chunks, airframes=env.n if full else None, days=env.days,
                               clickhouse_dsn=self.clickhouse_dsn)  # fmt: skip
        timings["export"] = time.perf_counter() - tick
        job = self.jobs.get(session.job_id)
        summary = summarize(env, sim.state_dict(), log=session.spec.get("log", "full"), airframe_rows=rows).to_dict()
        summary.update(
            job_id=session.job_id,
            sink={"kind": sink.get("kind", "none"), "target": target},
            timings_s=timings,
            end_to_end_s=time.time() - (job.created if job else time.time()),
            worker=self.node,
            epoch=session.epoch,
            restores=_restores(session, handoff),
        )
        self.jobs.finish(session.job_id, session.epoch, summary)
        self.registry.drop(session.job_id)
        log.info("job %s exported: %d rows to %s", session.job_id, rows, target)
        return summary

    # ------------------------------------------------------------------------------------------------ helpers

    def _check_epoch(self, job_id: str, epoch: int) -> int:
        current = self.jobs.epoch(job_id)
        if current < 0:
            raise CheckpointError(f"job {job_id} is not known to this fleet (expired, or never submitted)")
        if epoch < current:
            raise StaleEpoch(f"job {job_id}: stage carries epoch {epoch}, the job is at epoch {current}: refused")
        if epoch > current:
            raise CheckpointError(f"job {job_id}: stage carries epoch {epoch}, ahead of the job's {current}")
        return current

    def _acquire(self, handoff: dict[str, Any]) -> tuple[Session, dict[str, float]]:
        """The live session at the current epoch: this process's, or restored from checkpoints and claimed."""
        job_id = handoff["job_id"]
        timings = dict(handoff.get("timings", {}))
        current = self._check_epoch(job_id, int(handoff["epoch"]))
        session = self.registry.get(job_id)
        if session is not None and session.epoch == current:
            session.restored = False
            return session, timings
        self.registry.drop(job_id)
        tick = time.perf_counter()
        session = self._restore(job_id)
        session.epoch = self.jobs.claim(job_id, self.node, self.queue, seen_epoch=current)
        timings["restore"] = timings.get("restore", 0.0) + time.perf_counter() - tick
        session.restored = True
        log.info("job %s restored at day %d and claimed (epoch %d)", job_id, session.backend.day, session.epoch)
        return session, timings

    def _restore(self, job_id: str) -> Session:
        job = self.jobs.get(job_id)
        if job is None:
            raise CheckpointError(f"job {job_id} is not known to this fleet")
        environment = self.checkpoints.latest(job_id, ["environment"])
        if environment is None:
            raise CheckpointError(f"job {job_id}: no readable environment checkpoint; submit the job again")
        session = self._build(job_id, job.epoch, job.spec, _inputs_from_payload(environment.payload))
        session.inputs = None
        state = self.checkpoints.latest(job_id, ["progress", "population"])
        if state is not None:
            session.backend.load_state_dict(state.payload)
            session.created = True
        return session

    def _build(self, job_id: str, epoch: int, spec: dict[str, Any], inputs: LifecycleInputs) -> Session:
        env = build_environment(inputs, spec.get("days"))
        backend = get_backend(spec.get("backend") or self.default_backend)
        backend.build(env, log=spec.get("log", "full"))
        return Session(job_id, epoch, spec, env, backend, inputs=inputs)

    def _save(self, session: Session, kind: str, payload: Any, *, first_day: int = 0, day: int | None = None) -> Any:
        return self.checkpoints.save(
            session.job_id,
            kind,
            session.backend.day if day is None else day,
            payload,
            first_day=first_day,
            fence=self.jobs.fence(session.job_id, session.epoch),
        )

    def _keep(self, session: Session) -> None:
        """Hold the session for the next stage, or drop it when the job runs without persistence."""
        if session.spec.get("persistent", True):
            self.registry.put(session)
        else:
            self.registry.drop(session.job_id)

    def _handoff(self, session: Session, timings: dict[str, float], previous: dict[str, Any]) -> dict[str, Any]:
        return {"job_id": session.job_id, "epoch": session.epoch, "day": session.backend.day, "timings": timings,
                "restores": _restores(session, previous)}  # fmt: skip

    def _progress(self, session: Session, first: int, elapsed_s: float) -> dict[str, Any]:
        day, days = session.backend.day, session.env.days
        device = session.backend.device_memory_bytes()
        return {
            "job_id": session.job_id,
            "day": day,
            "days": days,
            "airframes": session.env.n,
            "percent": 100.0 * day / days if days else 100.0,
            "days_per_s": (day - first) / elapsed_s if elapsed_s > 0 else 0.0,
            "rss_mb": self.process.memory_info().rss / 2**20,
            "device_memory_mb": None if device is None else device / 2**20,
            "worker": self.node,
            "pid": os.getpid(),
        }


def _restores(session: Session, previous: dict[str, Any]) -> int:
    """Restores of the job so far: the earlier stages' count, plus one if this stage restored it."""
    return int(previous.get("restores", 0)) + int(session.restored)


def read_results(checkpoints: Checkpoints, job_id: str, days: int) -> list[ResultChunk]:
    """The MP2 of days ``0 .. days - 1`` from the job's result checkpoints, chunk by chunk in day order.

    Raises:
        CheckpointError: a day is not covered, or a chunk is unreadable.
    """
    chunks = []
    for ref in checkpoints.result_refs(job_id, days):
        payload = checkpoints.read(ref)["payload"]
        chunks.append(ResultChunk(ref.first_day, ref.day, payload["airframe"], payload["daily"]))
    return chunks


def write_mp2(
    sink: dict[str, Any],
    job_id: str,
    chunks: list[ResultChunk],
    *,
    airframes: int | None,
    days: int,
    clickhouse_dsn: str = "",
) -> str:
    """Hand a job's MP2 chunks to ``sink`` (parquet, clickhouse or none); return where it went (no password).

    Both sinks are idempotent: Parquet parts are replaced by first day, the ClickHouse partition of the job as a
    whole. ``airframes`` (with a full log) makes the ClickHouse export check the row count first. A ClickHouse sink
    goes to its own ``dsn`` if it names one, else to ``clickhouse_dsn``.
    """
    kind = sink.get("kind", "none")
    if kind == "none":
        return ""
    if kind == "parquet":
        parquet = ParquetSink(Path(sink["path"]))
        for chunk in chunks:
            parquet.write(chunk.first_day, chunk.airframe, chunk.daily)
        parquet.close()
        return str(parquet.directory)
    if kind == "clickhouse":
        from simfleet.shared.clickhouse.export import DEFAULT_BATCH_ROWS
        from simfleet.shared.clickhouse.migrations import open_db
        from simfleet.shared.clickhouse.mp2 import export_mp2

        airframe = _concat([c.airframe for c in chunks])
        daily = _concat([c.daily for c in chunks])
        with open_db(sink.get("dsn") or clickhouse_dsn) as ch:
            export_mp2(ch, job_id, airframe, daily, airframes=airframes, days=days,
                       batch_rows=int(sink.get("batch_rows", DEFAULT_BATCH_ROWS)))  # fmt: skip
            return ch.dsn.redacted
    raise ConfigError(f"unknown sink kind {kind!r} (none, parquet or clickhouse)", key="sink.kind")


def node_name() -> str:
    """This worker's node name (set by ``simfleet worker``), or the host name."""
    return os.environ.get("SIMFLEET_NODE") or os.uname().nodename
