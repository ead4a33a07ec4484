"""DES studies from the producer's side: publish one as a chord, follow it, wait for its aggregate, cancel it.

A study is one ``des.run`` task per batch of replications (task id ``<study>-<i>``, ``i`` the batch's first index; a
:class:`~simfleet.shared.messages.study.ReplicationRequest` each; a batch is one replication unless they are short:
:mod:`simfleet.producer.fleet.batching`) and a ``des.aggregate`` callback whose task id is the study id, so the
study's answer is that task's result. The study's record
(:class:`~simfleet.shared.messages.study.StudyRecord`) is kept in Redis beside the results, so that ``simfleet study
status|list|cancel`` work from anywhere later.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import msgspec

from simfleet.producer.fleet.arguments import choice, seconds, time_limit, whole
from simfleet.producer.fleet.batching import batch_size, pilot_replication_s
from simfleet.shared.celery_app import DES_AGGREGATE, DES_RUN
from simfleet.shared.errors import FleetUnavailable, MessageError, StudyFailed
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
from simfleet.shared.messages.study import (
    DEFAULT_ENGINE,
    ENGINES,
    MAX_BATCH,
    MAX_REPLICATION_INDEX,
    SEED_MAX,
    Engine,
    ReplicationProgress,
    ReplicationRequest,
    StudyRecord,
)
from simfleet.shared.settings import PRIORITIES
from simfleet.shared.studies import replication_id

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet
    from simfleet.worker.des.scenario import Scenario


@dataclass(frozen=True)
class StudyProgress:
    """Where a study stands: replications done, failed, running (with their progress), waiting.

    Replications are counted one by one whatever the batching: a batch that is running counts those of its
    replications already recorded as done.

    Attributes:
        study_id: the study.
        total: replications in it.
        done: finished.
        failed: failed (a failed batch counts its replication that failed; those after it never ran).
        running: the running ones' latest figures.
        finished: the aggregate is there (or the study failed or was cancelled).
        state: ``running``, ``done``, ``failed``, ``cancelled``, or ``reconnecting`` while Redis is unreachable.
    """

    study_id: str
    total: int
    done: int
    failed: int
    running: list[ReplicationProgress] = field(default_factory=list)
    finished: bool = False
    state: str = "running"

    @property
    def percent(self) -> float:
        """Share of the study's simulated time done, counting running replications by their progress."""
        partial = sum(r.percent for r in self.running) / 100.0
        return 100.0 * min(self.total, self.done + self.failed + partial) / self.total if self.total else 100.0

    @property
    def events_per_s(self) -> float:
        """Summed event rate of the replications running now."""
        return sum(r.events_per_s for r in self.running)


OnProgress = Callable[[StudyProgress], None]
FIRST_POLL_S = 0.05
"""A wait looks this often for its first :data:`FAST_POLL_FOR_S`, then 1.5 times longer each time up to its
``poll_s``: a short study (a search's probe, a precision round) is seen done within tens of milliseconds instead of
up to ``poll_s`` later, while the fleet waits for the next one; a long one is asked about every ``poll_s``."""
FAST_POLL_FOR_S = 2.0


class Study:
    """A handle on a published DES study."""

    def __init__(self, fleet: Fleet, record: StudyRecord) -> None:
        self.fleet = fleet
        self.record = record
        self.id = record.study_id
        self.task_ids = record.task_ids
        self.batches = record.batches()

    def __repr__(self) -> str:
        return f"Study({self.id!r})"

    def progress(self) -> StudyProgress:
        """Ask the result backend where every batch stands, and Redis which replications of unfinished ones are done."""
        done = failed = 0
        running = []
        unfinished: list[int] = []
        for task_id, indices in zip(self.task_ids, self.batches, strict=True):
            meta = self.fleet.task_meta(task_id)
            state = meta.get("status")
            if state == "SUCCESS":
                done += len(indices)
                continue
            if len(indices) > 1:
                unfinished.extend(indices)
            if state == "FAILURE":
                failed += 1
            elif state == "PROGRESS" and isinstance(meta.get("result"), dict):
                with contextlib.suppress(MessageError):
                    running.append(decode(ReplicationProgress, meta["result"]))
        if unfinished:
            with self.fleet.translate():
                recorded = self.fleet.study_records.recorded(self.id, unfinished)
            done += len(recorded)
            running = [r for r in running if r.replication not in recorded]  # its last report is older than its end
        final = self.fleet.task_meta(self.id).get("status")
        with self.fleet.translate():
            record = self.fleet.study_records.get(self.id) or self.record
        if record.state == "cancelled":
            state = "cancelled"
        else:
            state = {"SUCCESS": "done", "FAILURE": "failed", "REVOKED": "cancelled"}.get(final or "", "running")
        finished = state != "running" or failed > 0
        return StudyProgress(self.id, self.record.replications, done, failed, running, finished, state)

    def finished(self) -> bool:
        """Whether the study has its answer, or has failed or been cancelled."""
        return self.progress().finished

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.5,
             on_progress: OnProgress | None = None) -> StudyAggregate:  # fmt: skip
        """Wait for the study's aggregate, calling ``on_progress(StudyProgress)`` meanwhile.

        It looks every ``poll_s`` seconds, more often in its first seconds (:data:`FIRST_POLL_S`). A Redis outage
        does not end the wait: progress reports the state ``reconnecting`` until Redis answers.

        Raises:
            StudyFailed: a replication failed, the study was cancelled, or ``timeout`` passed (``timed_out``).
        """
        timeout = time_limit(timeout)
        poll_s = seconds(poll_s, key="poll_s")
        started = time.monotonic()
        deadline = math.inf if timeout is None else started + timeout
        interval = min(poll_s, FIRST_POLL_S)
        while True:
            try:
                progress = self.progress()
            except FleetUnavailable:
                progress = StudyProgress(self.id, self.record.replications, 0, 0, state="reconnecting")
            if on_progress is not None:
                on_progress(progress)
            if progress.finished:
                return self._outcome(progress)
            if time.monotonic() > deadline:
                raise StudyFailed(self.id, f"did not finish within {timeout} s; it goes on", error_type="Timeout",
                                  timed_out=True)  # fmt: skip
            time.sleep(interval)
            if time.monotonic() - started >= FAST_POLL_FOR_S:
                interval = min(poll_s, 1.5 * interval)

    result = wait

    def _outcome(self, progress: StudyProgress) -> StudyAggregate:
        if progress.state == "cancelled":
            raise StudyFailed(self.id, "cancelled by an operator", error_type="Cancelled")
        if progress.state == "done":
            answer = decode(StudyAggregate, self.fleet.task_meta(self.id)["result"], what=f"study {self.id} aggregate")
            if answer.run.wall_s.mean is not None:
                self.fleet.measured(self.record.scenario, answer.run.wall_s.mean, self.record.engine)
            return answer
        for task_id in [*self.task_ids, self.id]:
            meta = self.fleet.task_meta(task_id)
            if meta.get("status") == "FAILURE":
                error = meta.get("result")
                stage = DES_AGGREGATE if task_id == self.id else f"{DES_RUN} {task_id}"
                raise StudyFailed(self.id, str(error), stage=stage, error_type=type(error).__name__)
        raise StudyFailed(self.id, f"ended {progress.state}", error_type="Unknown")

    def summaries(self, timeout: float | None = None) -> list[ReplicationSummary]:
        """The replications' summaries, in replication order (waits for the study first)."""
        self.wait(timeout=timeout)
        summaries = []
        for task_id in self.task_ids:
            batch = self.fleet.task_meta(task_id)["result"]
            if not isinstance(batch, list):
                raise MessageError(f"{DES_RUN} {task_id} result", "expected a list of replication summaries")
            summaries += [decode(ReplicationSummary, raw, what=f"{DES_RUN} {task_id} summary {i}")
                          for i, raw in enumerate(batch)]  # fmt: skip
        return summaries

    def cancel(self) -> bool:
        """Cancel the study: replications not started never run, running ones stop at their next slice."""
        with self.fleet.translate():
            record = self.fleet.study_records.cancel(self.id)
        self.fleet.app.control.revoke([*self.task_ids, self.id])
        return record is not None


def publish_study(fleet: Fleet, scenario: Scenario | str | Path | dict[str, Any], *, replications: int | None,
                  seed: int | None, priority: str, first: int = 0, batch: int | None = None,
                  engine: str = DEFAULT_ENGINE) -> Study:  # fmt: skip
    """Validate and publish a DES study (see :meth:`Fleet.run_des`).

    Every argument is checked before anything is written to Redis or published (numpy integers are taken as
    ``int``; a bool is not a number here).

    Raises:
        ConfigError: an argument of the wrong type or out of its range, naming it and what it accepts.
        ScenarioError: the scenario is invalid.
    """
    from celery import chord

    from simfleet.worker.des.scenario import as_scenario

    priority = choice(priority, key="priority", choices=tuple(PRIORITIES))
    if replications is not None:
        replications = whole(replications, key="replications")
    if seed is not None:
        seed = whole(seed, key="seed", low=0, high=SEED_MAX)
    first = whole(first, key="first", low=0, high=MAX_REPLICATION_INDEX)
    if batch is not None:
        batch = whole(batch, key="batch", low=1, high=MAX_BATCH)
    chosen = cast(Engine, choice(engine, key="engine", choices=ENGINES))
    scenario = as_scenario(scenario)
    n = scenario.replications if replications is None else replications  # a scenario's own are checked when parsed
    seed = scenario.seed if seed is None else seed
    if batch is None:
        batch = choose_batch(fleet, scenario, n, seed, first, chosen)
    study_id = uuid.uuid4().hex
    level = PRIORITIES[priority]
    document = msgspec.json.encode(scenario.to_dict()).decode()
    record = StudyRecord(study_id=study_id, scenario=scenario.name, source=scenario.source, replications=n, seed=seed,
                         priority=priority, created=time.time(), task_ids=[], first=first,  # type: ignore[arg-type]
                         batch=min(batch, n), engine=chosen)  # fmt: skip
    batches = record.batches()
    record = msgspec.structs.replace(record, task_ids=[replication_id(study_id, b.start) for b in batches])
    requests = [ReplicationRequest(study_id=study_id, replication=b.start, count=len(b), seed=seed, scenario=document,
                                   engine=chosen) for b in batches]  # fmt: skip
    header = [
        fleet.app.signature(DES_RUN, args=(to_wire(request),), kwargs={"study_id": study_id}, priority=level).set(
            task_id=task_id
        )
        for request, task_id in zip(requests, record.task_ids, strict=True)
    ]
    callback = fleet.app.signature(DES_AGGREGATE, kwargs={"study_id": study_id}, priority=level).set(task_id=study_id)
    with fleet.translate():
        fleet.study_records.create(record)
        chord(header, body=callback, app=fleet.app).apply_async()
    return Study(fleet, record)


def choose_batch(fleet: Fleet, scenario: Scenario, replications: int, seed: int, first: int, engine: Engine) -> int:
    """The batch size of a study (:mod:`simfleet.producer.fleet.batching`): measured, then spread over the workers."""
    settings = fleet.settings.des
    if replications <= 1 or settings.batch_target_s <= 0 or settings.max_batch == 1:
        return 1
    replication_s = fleet.replication_s(scenario.name, engine)
    if replication_s is None:
        replication_s = pilot_replication_s(scenario, seed, first, settings.pilot_s, engine)
        fleet.measured(scenario.name, replication_s, engine)
    return batch_size(replications, replication_s, fleet.des_processes(), settings)
