"""The four stages of a lifecycle job, as a GPU-role worker process runs them (Celery-free; the tasks are thin).

A stage runs from its :class:`~simfleet.shared.messages.lifecycle.StageMessage` and the job's record in Redis. It is
run only if the message is the job's due one (same epoch, same ``seq``): a copy sent by an owner that lost the job,
a duplicate, or a message of a stage already done is refused (:class:`~simfleet.shared.errors.StaleEpoch`). Then it
takes the job's live session from this process's registry; if this process does not hold the job (it was never
here, the process was restarted, the session was evicted, or the job runs without persistence) it claims the job
and restores it from its latest checkpoints. Every write is fenced by the epoch. A stage ends by recording the next
stage's message in the record (one fenced step) and publishing it to this worker's own queue.

- load: claim the job, read its inputs (the producer's inputs blob in the checkpoint store, or a ClickHouse
  version), validate them (and the job's ensemble against their horizon), build the environment and the backend;
  the inputs blob is the job's ``environment`` checkpoint (a ClickHouse version is written as one).

Every stage that builds a job's environment (load, and the restore of a job this process does not hold) builds the
same one: the inputs' environment, stacked for the job's ensemble (variants x replications,
:func:`~simfleet.worker.lifecycle.ensemble.ensemble_environment`), so the live session, a restore from checkpoints
and a chunk computed again all run the same stacked simulation.
- create: create the population, write the ``population`` checkpoint.
- execute: step to the chunk's last day, reporting progress (into the record, and through ``report`` to the task's
  state) at most once per ``progress_interval_s``; write the chunk's MP2 as a ``result`` checkpoint, then
  the ``progress`` checkpoint (state at the chunk's end). A result chunk is published before the progress that
  follows it, so whatever progress is restored, the MP2 of every earlier day exists.
- export: stream the MP2 of every chunk, in day order, from the result checkpoints to the job's sink (one chunk in
  memory at a time, reporting the days exported through ``report``); a chunk that cannot be read is computed again
  from the newest good state before it. Record the summary and finish the job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import msgspec
import psutil

from simfleet.shared.checkpoints import CheckpointRef, Checkpoints
from simfleet.shared.errors import CheckpointError, StaleEpoch
from simfleet.shared.jobs import JobRecord, Jobs
from simfleet.shared.lifecycle_contract import LifecycleInputs
from simfleet.shared.messages.lifecycle import (
    ClickHouseSink,
    JobSpec,
    JobSummary,
    SinkTarget,
    Stage,
    StageMessage,
    StageProgress,
    StoreInputs,
)
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.backends.base import Columns, LifecycleBackend
from simfleet.worker.lifecycle.ensemble import ensemble_environment
from simfleet.worker.lifecycle.environment import Environment, build_environment, check_run_memory
from simfleet.worker.lifecycle.inputs import inputs_from_payload, inputs_payload
from simfleet.worker.lifecycle.run import summarize
from simfleet.worker.lifecycle.validation import validate_inputs
from simfleet.worker.sessions import Session, SessionRegistry

log = logging.getLogger(__name__)
Report = Callable[[StageProgress], None]
Publish = Callable[[StageMessage, str, str], None]
"""Publishes a stage message: ``publish(message, queue, priority)`` (the task layer provides it)."""
SLICE_DAYS = 30
"""Days stepped between two looks at the clock for PROGRESS reports."""
STATES = {"load": "loaded", "create": "created", "execute": "running"}


def load_job_inputs(
    spec: JobSpec, checkpoints: Checkpoints, clickhouse_dsn: str = ""
) -> tuple[LifecycleInputs, CheckpointRef | None]:
    """The validated inputs of a job, and (for inputs from the checkpoint store) the reference of their blob.

    The job's ensemble, if any, is checked against the inputs' horizon too (the producer checked it already when it
    knew the inputs; a job published with an inputs blob or a ClickHouse version alone is checked here).

    Raises:
        InputError, ConfigError: the inputs are missing or invalid (naming table, row and field), or the ensemble
            does not fit them (naming the key).
        CheckpointError: the inputs blob is missing, damaged, or not this job's environment.
    """
    source = spec.inputs
    ref = None
    if isinstance(source, StoreInputs):
        from simfleet.shared.checkpoint_format import checksum, decode

        blob = checkpoints.store.get(source.key)
        where = f"{checkpoints.store.url} {source.key}"
        if checksum(blob) != source.sha256:
            raise CheckpointError(f"{where}: the inputs blob does not match the job's sha256")
        document = decode(blob, where=where)
        if (document["job_id"], document["kind"]) != (spec.job_id, "environment"):
            raise CheckpointError(f"{where}: holds a {document['kind']} checkpoint of job {document['job_id']}, not "
                                  f"the environment of job {spec.job_id}")  # fmt: skip
        inputs = inputs_from_payload(document["payload"])
        ref = CheckpointRef(source.key, "environment", 0, len(blob), source.sha256, time.time())
    else:
        from simfleet.shared.clickhouse.inputs import ClickHouseSource
        from simfleet.shared.clickhouse.migrations import open_db

        with open_db(source.dsn or clickhouse_dsn) as ch:
            inputs = ClickHouseSource(ch, source.version_date, source.version_id).load()
    inputs = replace(inputs, days=spec.days)
    validate_inputs(inputs)
    if spec.ensemble is not None:
        from simfleet.worker.lifecycle.variants import check_ensemble

        check_ensemble(spec.ensemble, inputs.version_date, spec.days, source=f"job {spec.job_id} variants")
    return inputs, ref


class Stages:
    """The stages as run by one worker process.

    Args:
        node: this worker's node name (the owner recorded for jobs it claims).
        queue: this worker's own queue (where later stages of its jobs go).
        jobs: job records and ownership.
        checkpoints: the checkpoint store and its references.
        registry: this process's live sessions.
        publish: how a stage message is published (the task layer's).
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
        publish: Publish,
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
        self.publish = publish
        self.default_backend = default_backend
        self.clickhouse_dsn = clickhouse_dsn
        self.progress_interval_s = progress_interval_s
        self.process = psutil.Process()

    # ----------------------------------------------------------------------------------------------- the entry

    def run(self, message: StageMessage, report: Report | None = None) -> StageMessage | JobSummary:
        """Run one stage; return the next stage's message (recorded and published) or the job's summary.

        Raises:
            StaleEpoch: the message is not the job's due one; nothing was done.
        """
        session = self.registry.get(message.job_id)
        if (
            session is not None
            and session.epoch == message.epoch
            and message.stage != "load"
            and session.spec.stage_of(message.seq) == (message.stage, message.until)
            and self.jobs.begin(message.job_id, message.epoch, message.seq)
        ):  # the usual case, in one round trip: this process holds the job and the message is its due stage
            session.restored = False
            timings = dict(message.timings_s)
        else:
            record = self.due_record(message)
            if not self.jobs.begin(record.job_id, message.epoch, message.seq):
                raise StaleEpoch(f"job {message.job_id}: stage {message.seq} stopped being due as it began")
            if message.stage == "load":
                return self._load(record, message)
            session, timings = self._acquire(record, message)
        if message.stage == "create":
            return self._create(session, message, timings)
        if message.stage == "execute":
            return self._execute(session, message, timings, report)
        return self._export(session, message, timings, report)

    def due_record(self, message: StageMessage) -> JobRecord:
        """The job's record if ``message`` is its due stage; otherwise refuse it.

        Refusing a stage of a job this worker owns whose due message was never published (the process died between
        recording and publishing) publishes that message first.

        Raises:
            StaleEpoch: naming why the message is refused.
        """
        record = self.jobs.get(message.job_id)
        if record is None:
            raise StaleEpoch(f"job {message.job_id} is not known to this fleet (expired, deleted, or never submitted)")
        if record.ended:
            raise StaleEpoch(f"job {message.job_id} has ended ({record.state})")
        if message.epoch != record.epoch:
            relation = "older than" if message.epoch < record.epoch else "ahead of"
            raise StaleEpoch(
                f"job {message.job_id}: stage carries epoch {message.epoch}, {relation} the job's "
                f"epoch {record.epoch}: refused"
            )
        if message.seq != record.seq:
            if record.owner == self.node and not record.due_sent and record.due is not None:
                self._send(record.spec, record.due, record.epoch)
            raise StaleEpoch(
                f"job {message.job_id}: stage {message.seq} ({message.stage}) is not due (stage "
                f"{record.seq} is): a duplicate, refused"
            )
        stage, until = record.spec.stage_of(message.seq)
        if (message.stage, message.until) != (stage, until):
            raise StaleEpoch(
                f"job {message.job_id}: stage {message.seq} is {stage} to day {until}, the message "
                f"says {message.stage} to day {message.until}: refused"
            )
        return record

    # ------------------------------------------------------------------------------------------------ stages

    def _load(self, record: JobRecord, message: StageMessage) -> StageMessage:
        job_id, epoch, spec = record.job_id, message.epoch, record.spec
        started = time.perf_counter()
        self.jobs.claim(job_id, self.node, self.queue, epoch=epoch, seq=message.seq)
        self.jobs.update(job_id, epoch, state="loading")
        inputs, stored = load_job_inputs(spec, self.checkpoints, self.clickhouse_dsn)
        session = self._build(job_id, epoch, spec, inputs, record.created)
        timings = {"load": time.perf_counter() - started}
        tick = time.perf_counter()
        fence = self.jobs.fence(job_id, epoch)
        if stored is not None:  # the producer's inputs blob becomes the job's environment checkpoint
            self.checkpoints.adopt(job_id, stored, fence=fence)
        else:
            self.checkpoints.save(job_id, "environment", 0, inputs_payload(inputs), fence=fence)
        timings["checkpoint"] = time.perf_counter() - tick
        self._keep(session)
        log.info("job %s loaded: %d airframes x %d runs, %d days (epoch %d)", job_id, session.env.airframes,
                 spec.members, session.env.days, epoch)  # fmt: skip
        return self._advance(session, message, timings, airframes=session.env.airframes)

    def _create(self, session: Session, message: StageMessage, timings: dict[str, float]) -> StageMessage:
        if not session.created:
            tick = time.perf_counter()
            session.backend.create()
            session.created = True
            timings["create"] = timings.get("create", 0.0) + time.perf_counter() - tick
            tick = time.perf_counter()
            self._save(session, "population", session.backend.state_dict())
            timings["checkpoint"] = timings.get("checkpoint", 0.0) + time.perf_counter() - tick
        self._keep(session)
        return self._advance(session, message, timings, day=session.backend.day)

    def _execute(
        self, session: Session, message: StageMessage, timings: dict[str, float], report: Report | None
    ) -> StageMessage:
        sim, env = session.backend, session.env
        until = min(message.until, env.days)
        first = sim.day
        if first >= until:
            self._keep(session)
            return self._advance(session, message, timings, day=sim.day)
        started = time.perf_counter()
        last_report = time.perf_counter()
        while sim.day < until:
            sim.step(min(SLICE_DAYS, until - sim.day))
            now = time.perf_counter()
            if now - last_report >= self.progress_interval_s:
                last_report = now
                figures = self._progress(session, "execute", sim.day, first, now - started)
                # A cancel stops the run here (the update is refused once the epoch moved on).
                self.jobs.update(session.job_id, session.epoch, progress=figures, progressed=time.time())
                if report is not None:
                    report(figures)
        airframe, daily = sim.read_chunk()
        run_s = time.perf_counter() - started
        tick = time.perf_counter()
        result_ref = self._save(session, "result", {"airframe": airframe, "daily": daily}, first_day=first, day=until)
        progress_ref = self._save(session, "progress", sim.state_dict())
        checkpoint_s = time.perf_counter() - tick
        timings["run"] = timings.get("run", 0.0) + run_s
        timings["checkpoint"] = timings.get("checkpoint", 0.0) + checkpoint_s
        figures = msgspec.structs.replace(
            self._progress(session, "execute", until, first, run_s),
            checkpoint_bytes=result_ref.size + progress_ref.size,
            checkpoint_s=checkpoint_s,
        )  # into the record only: the task's state turns SUCCESS a moment later, so a report now would be lost work
        self._keep(session)
        log.info(
            "job %s: days %d..%d in %.2f s, checkpoints %.2f s", session.job_id, first, until - 1, run_s, checkpoint_s
        )
        return self._advance(session, message, timings, day=until, progress=figures)

    def _export(
        self, session: Session, message: StageMessage, timings: dict[str, float], report: Report | None
    ) -> JobSummary:
        env, sim, spec = session.env, session.backend, session.spec
        if sim.day != env.days:
            raise CheckpointError(f"job {session.job_id}: export at day {sim.day}, the horizon is {env.days}")
        self.jobs.update(session.job_id, session.epoch, state="exporting")
        tick = time.perf_counter()
        full = spec.log == "full"
        sink = spec.sink
        if isinstance(sink, ClickHouseSink):
            from simfleet.shared.clickhouse.migrations import open_db
            from simfleet.shared.clickhouse.mp2 import export_mp2_chunks

            with open_db(sink.dsn or self.clickhouse_dsn) as ch:
                reports = export_mp2_chunks(
                    ch,
                    session.job_id,
                    self._chunks(session, report),
                    airframes=env.airframes if full else None,
                    days=env.days,
                    batch_rows=sink.batch_rows,
                    ensemble=spec.ensemble,
                )
                target = SinkTarget(kind="clickhouse", target=ch.dsn.redacted)
            rows = next((r.rows for r in reports if r.table == "mp2"), 0)
        else:  # MP2 stays in the result checkpoints, where `simfleet job export` reads it
            target, rows = SinkTarget(kind="none"), env.n * env.days if full else 0
        timings["export"] = time.perf_counter() - tick
        model = summarize(env, sim.state_dict(), log=spec.log, airframe_rows=rows, ensemble=spec.ensemble)
        summary = JobSummary(
            job_id=session.job_id,
            airframes=model.airframes,
            days=model.days,
            log=spec.log,
            transitions=model.transitions,
            status_counts_end=model.status_counts_end,
            shortfall_days=model.shortfall_days,
            airframe_rows=rows,
            sink=target,
            timings_s=timings,
            end_to_end_s=time.time() - session.submitted,
            worker=self.node,
            epoch=session.epoch,
            restores=message.restores + int(session.restored),
            members=model.members,
        )
        self.jobs.finish(session.job_id, session.epoch, summary)
        self.registry.drop(session.job_id)
        log.info("job %s exported: %d rows to %s", session.job_id, rows, target.target or "the result checkpoints")
        return summary

    # ------------------------------------------------------------------------------------------------ helpers

    def _chunks(self, session: Session, report: Report | None = None) -> Iterator[tuple[Columns, Columns]]:
        """The job's MP2 chunk by chunk; a chunk whose checkpoint cannot be read is computed again.

        Each chunk the sink has taken counts as exported: the days exported so far go to ``report`` at most once per
        ``progress_interval_s`` (only there: the job's record keeps the simulation's progress).
        """
        started = last_report = time.perf_counter()
        for ref in self.checkpoints.result_refs(session.job_id, session.env.days):
            now = time.perf_counter()
            if report is not None and ref.first_day > 0 and now - last_report >= self.progress_interval_s:
                last_report = now
                report(self._progress(session, "export", ref.first_day, 0, now - started))
            try:
                payload = self.checkpoints.read(ref)["payload"]
            except CheckpointError as exc:
                log.warning(
                    "job %s: result chunk of days %d..%d unreadable (%s); computing it again",
                    session.job_id,
                    ref.first_day,
                    ref.day - 1,
                    exc,
                )
                yield self.recompute(session, ref.first_day, ref.day)
                continue
            chunk = (payload["airframe"], payload["daily"])
            del payload  # one chunk in memory: this one goes before the next is read
            yield chunk
            del chunk

    def recompute(self, session: Session, first_day: int, end_day: int) -> tuple[Columns, Columns]:
        """The MP2 of days ``first_day .. end_day - 1``, simulated again, and saved as a result checkpoint.

        It starts from the newest readable state at or before ``first_day``; the model is deterministic, so this is
        the same chunk, bit for bit.
        """
        state = self.checkpoints.latest(session.job_id, ["progress", "population"], at_most_day=first_day)
        if state is None:
            raise CheckpointError(
                f"job {session.job_id}: no readable state at or before day {first_day} to compute "
                "its MP2 again; submit the job again"
            )
        scratch = self._backend(session.spec, session.env)
        scratch.load_state_dict(state.payload)
        if scratch.day < first_day:
            scratch.step(first_day - scratch.day)
            scratch.read_chunk()  # the days before the lost chunk were exported from their own checkpoints
        scratch.step(end_day - first_day)
        airframe, daily = scratch.read_chunk()
        self._save(session, "result", {"airframe": airframe, "daily": daily}, first_day=first_day, day=end_day)
        log.info(
            "job %s: result chunk of days %d..%d computed again from day %d",
            session.job_id,
            first_day,
            end_day - 1,
            state.ref.day,
        )
        return airframe, daily

    def _acquire(self, record: JobRecord, message: StageMessage) -> tuple[Session, dict[str, float]]:
        """The live session at the message's epoch: this process's, or claimed and restored from checkpoints."""
        timings = dict(message.timings_s)
        session = self.registry.get(record.job_id)
        if session is not None and session.epoch == message.epoch:
            session.restored = False
            return session, timings
        self.registry.drop(record.job_id)
        self.jobs.claim(record.job_id, self.node, self.queue, epoch=message.epoch, seq=message.seq)
        tick = time.perf_counter()
        session = self._restore(record, message.epoch)
        timings["restore"] = timings.get("restore", 0.0) + time.perf_counter() - tick
        session.restored = True
        log.info("job %s restored at day %d and claimed (epoch %d)", record.job_id, session.backend.day, message.epoch)
        return session, timings

    def _restore(self, record: JobRecord, epoch: int) -> Session:
        environment = self.checkpoints.latest(record.job_id, ["environment"])
        if environment is None:
            raise CheckpointError(f"job {record.job_id}: no readable environment checkpoint; submit the job again")
        session = self._build(record.job_id, epoch, record.spec, inputs_from_payload(environment.payload),
                              record.created)  # fmt: skip
        state = self.checkpoints.latest(record.job_id, ["progress", "population"])
        if state is not None:
            session.backend.load_state_dict(state.payload)
            session.created = True
        return session

    def _backend(self, spec: JobSpec, env: Environment) -> LifecycleBackend:
        backend = get_backend(spec.backend or self.default_backend)
        backend.build(env, log=spec.log)
        return backend

    def _build(self, job_id: str, epoch: int, spec: JobSpec, inputs: LifecycleInputs, submitted: float) -> Session:
        # The memory rule of a local run, on this worker's memory, before anything of the job is allocated: a
        # horizon that cannot fit fails the job with `days` named instead of an out-of-memory kill mid-run. An
        # ensemble simulates every member's copy of the fleet.
        check_run_memory(len(inputs.mp3["aircraft_number"]) * spec.members, spec.days, chunk_days=spec.chunk_days,
                         log=spec.log, keep_rows=False)  # fmt: skip
        env = ensemble_environment(build_environment(inputs, spec.days), spec.ensemble)
        return Session(job_id, epoch, spec, env, self._backend(spec, env), submitted)

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
        if session.spec.persistent:
            self.registry.put(session)
        else:
            self.registry.drop(session.job_id)

    def _advance(
        self, session: Session, message: StageMessage, timings: dict[str, float], **fields: Any
    ) -> StageMessage:
        """Record the next stage's message (fenced) with the finished stage's state, then publish it here."""
        spec = session.spec
        stage, until = spec.stage_of(message.seq + 1)
        due = StageMessage(
            job_id=session.job_id,
            epoch=session.epoch,
            seq=message.seq + 1,
            stage=stage,
            until=until,
            timings_s=timings,
            restores=message.restores + int(session.restored),
        )
        self.jobs.advance(session.job_id, session.epoch, message.seq, due, state=STATES[message.stage], **fields)
        self._send(spec, due, session.epoch)
        return due

    def _send(self, spec: JobSpec, due: StageMessage, epoch: int) -> None:
        self.publish(msgspec.structs.replace(due, epoch=epoch), self.queue, spec.priority)
        self.jobs.mark_sent(due.job_id, epoch, due.seq)

    def _progress(self, session: Session, stage: Stage, day: int, first: int, elapsed_s: float) -> StageProgress:
        """The figures of ``stage`` at ``day``, having gone from ``first`` to ``day`` in ``elapsed_s``."""
        days = session.env.days
        device = session.backend.device_memory_bytes()
        ensemble = session.spec.ensemble
        return StageProgress(
            job_id=session.job_id,
            stage=stage,
            day=day,
            days=days,
            airframes=session.env.airframes,
            variants=1 if ensemble is None else len(ensemble.variants),
            replications=1 if ensemble is None else ensemble.replications,
            percent=100.0 * day / days if days else 100.0,
            days_per_s=(day - first) / elapsed_s if elapsed_s > 0 else 0.0,
            rss_mb=self.process.memory_info().rss / 2**20,
            device_memory_mb=None if device is None else device / 2**20,
            worker=self.node,
            pid=os.getpid(),
        )


def node_name() -> str:
    """This worker's node name (set by ``simfleet worker``), or the host name."""
    return os.environ.get("SIMFLEET_NODE") or os.uname().nodename


__all__ = ["Stages", "load_job_inputs", "node_name"]
