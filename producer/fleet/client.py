"""The typed client that ETL code (and the command line) uses to publish work to the fleet.

A DES study is published as a Celery chord: one ``des.run`` task per replication (task id ``<study>-<i>``) and a
``des.aggregate`` callback whose task id is the study id, so the study's answer is simply that task's result. A
small record of the study (scenario, replications, seed, priority, task ids) is kept in Redis beside the results so
that ``simfleet study status ID`` can be asked from anywhere later.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chord

from simfleet.producer.fleet.backend import polling_backend_url
from simfleet.producer.fleet.lifecycle import LifecycleJob, job_spec, new_job_id, publish_lifecycle
from simfleet.producer.sla import Evaluator, SlaResult, search_sla
from simfleet.shared.celery_app import DES_AGGREGATE, DES_RUN, create_app
from simfleet.shared.errors import ConfigError, SimfleetError, StudyFailed
from simfleet.shared.jobs import Jobs
from simfleet.shared.settings import PRIORITIES, Settings, load_settings
from simfleet.worker.des.scenario import Scenario, load_scenario, parse_scenario

STUDY_KEY = "simfleet:study:{}"



@dataclass(frozen=True)
class StudyProgress:
    """Where a study stands: replications done, failed, running (with their PROGRESS figures), waiting."""

    study_id: str
    total: int
    done: int
    failed: int
    running: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    @property
    def percent(self) -> float:
        """Share of the study's simulated time done, counting running replications by their progress."""
        partial = sum(float(r.get("percent", 0.0)) for r in self.running) / 100.0
        return 100.0 * min(self.total, self.done + self.failed + partial) / self.total if self.total else 100.0

    @property
    def events_per_s(self) -> float:
        """Summed event rate of the replications running now."""
        return sum(float(r.get("events_per_s", 0.0)) for r in self.running)


class Study:
    """A handle on a published DES study."""

    def __init__(self, fleet: Fleet, study_id: str, task_ids: list[str], record: dict[str, Any]) -> None:
        self.fleet = fleet
        self.id = study_id
        self.task_ids = task_ids
        self.record = record

    def progress(self) -> StudyProgress:
        """Ask the result backend where every replication stands."""
        done = failed = 0
        running = []
        for task_id in self.task_ids:
            meta = self.fleet.app.backend.get_task_meta(task_id)
            state = meta.get("status")
            if state == "SUCCESS":
                done += 1
            elif state == "FAILURE":
                failed += 1
            elif state == "PROGRESS" and isinstance(meta.get("result"), dict):
                running.append(meta["result"])
            elif state == "STARTED":
                running.append({"percent": 0.0})
        finished = self.fleet.app.backend.get_task_meta(self.id).get("status") in ("SUCCESS", "FAILURE", "REVOKED")
        return StudyProgress(self.id, len(self.task_ids), done, failed, running, finished)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for and return the aggregate of the study (the same dict the local runner gives)."""
        answer: dict[str, Any] = self.fleet.wait_for_task(self.id, timeout, what=f"study {self.id}")
        return answer

    def summaries(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """The per-replication summaries, in replication order (waits for the study first)."""
        self.result(timeout=timeout)
        return [self.fleet.wait_for_task(t, timeout, what=f"replication {t}") for t in self.task_ids]

    def wait(self, timeout: float | None = None, poll_s: float = 0.5, on_progress: Any = None) -> dict[str, Any]:
        """Wait for the answer, calling ``on_progress(StudyProgress)`` every ``poll_s`` while waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.progress()
            if on_progress is not None:
                on_progress(progress)
            if progress.finished or progress.failed:
                return self.result(timeout=10.0)
            if deadline is not None and time.monotonic() > deadline:
                raise StudyFailed(self.id, f"did not finish within {timeout} s", error_type="Timeout", timed_out=True)
            time.sleep(poll_s)


class Fleet:
    """The fleet as seen from a producer: publish studies, follow them, search SLAs with the workers."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.settings = settings
        if app is None:
            app = create_app(settings, name="simfleet-producer")
            app.conf.result_backend = polling_backend_url(settings.result_backend)
        self.app = app
        self.redis = redis.Redis.from_url(settings.result_backend)
        self.jobs = Jobs(self.redis, expires_s=settings.result_expires_s)

    @classmethod
    def from_settings(cls, settings: Settings | str | Path | None = None) -> Fleet:
        """A client from settings, a settings file path, or the default settings lookup."""
        if not isinstance(settings, Settings):
            settings = load_settings(settings)
        return cls(settings)

    def close(self) -> None:
        """Release connections."""
        self.redis.close()
        self.app.close()

    def wait_for_task(self, task_id: str, timeout: float | None, *, what: str) -> Any:
        """Poll the result backend until ``task_id`` is ready and return its result.

        Polling (10 ms growing to 200 ms) rather than ``AsyncResult.get``: ``get`` subscribes to Redis pub/sub, and
        every result handle collected afterwards unsubscribes over that connection, which outlives the client.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            meta = self.app.backend.get_task_meta(task_id)
            status = meta.get("status")
            if status == "SUCCESS":
                return meta["result"]
            if status in ("FAILURE", "REVOKED"):
                error = meta.get("result")
                raise StudyFailed(what, str(error), error_type=type(error).__name__)
            if deadline is not None and time.monotonic() > deadline:
                raise StudyFailed(what, f"did not finish within {timeout} s (state {status})", error_type="Timeout",
                                  timed_out=True)  # fmt: skip
            time.sleep(pause)
            pause = min(0.2, pause * 1.5)

    def run_des(
        self,
        scenario: Scenario | str | Path | dict[str, Any],
        *,
        replications: int | None = None,
        seed: int | None = None,
        priority: str = "normal",
    ) -> Study:
        """Publish a DES study: replications 0..n-1 of ``scenario`` with ``seed``, then their aggregation."""
        if priority not in PRIORITIES:
            raise ConfigError(f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}", key="priority")
        if isinstance(scenario, dict):
            scenario = parse_scenario(scenario)
        elif not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        n = replications or scenario.replications
        seed = scenario.seed if seed is None else seed
        study_id = uuid.uuid4().hex
        level = PRIORITIES[priority]
        data = scenario.to_dict()
        task_ids = [f"{study_id}-{i}" for i in range(n)]
        header = [
            self.app.signature(DES_RUN, args=(data, seed, i), kwargs={"study_id": study_id}, priority=level).set(
                task_id=task_id
            )
            for i, task_id in enumerate(task_ids)
        ]
        callback = self.app.signature(DES_AGGREGATE, kwargs={"study_id": study_id}, priority=level).set(
            task_id=study_id
        )
        record = {
            "study_id": study_id,
            "scenario": scenario.name,
            "source": scenario.source,
            "replications": n,
            "seed": seed,
            "priority": priority,
            "created": time.time(),
            "task_ids": task_ids,
        }
        self.redis.set(STUDY_KEY.format(study_id), json.dumps(record), ex=self.settings.result_expires_s)
        chord(header, body=callback, app=self.app).apply_async()
        return Study(self, study_id, task_ids, record)

    def run_lifecycle(
        self,
        *,
        inputs: str | Path | dict[str, Any],
        days: int | None = None,
        chunk_days: int = 365,
        persistent: bool = True,
        out: str | Path | None = None,
        sink: dict[str, Any] | None = None,
        backend: str | None = None,
        log: str = "full",
        priority: str = "normal",
        job_id: str | None = None,
    ) -> LifecycleJob:
        """Publish a lifecycle job: load, create, execute in chunks of ``chunk_days``, export.

        Args:
            inputs: an inputs directory, or ``{"kind": "clickhouse", "version_date", "version_id"}`` (read from the
                workers' ``clickhouse_dsn``, or from a ``dsn`` given there).
            days: the horizon (default: the inputs' own; required for ClickHouse inputs).
            chunk_days: days per execute stage (a checkpoint at the end of each).
            persistent: keep the simulation alive in the owner's memory between stages; ``False`` restores it
                from the checkpoints at every stage (the fallback mode, and the baseline of the benchmark).
            out: write MP2 as Parquet here (``mp2/`` and ``mp2_daily/``) instead of ClickHouse.
            sink: where MP2 goes otherwise: by default ClickHouse (``{"kind": "clickhouse"}``: the workers'
                ``clickhouse_dsn``, or a ``dsn`` given there; one partition per job id in ``mp2`` and ``mp2_daily``);
                ``{"kind": "none"}`` leaves it in the result checkpoints.
            backend: the lifecycle backend (default: the worker's ``gpu_worker.backend``).
            log: ``full`` (per airframe and day) or ``aggregates``.
            priority: high, normal or background.
            job_id: the job's id (default: a fresh one).
        """
        job_id = job_id or new_job_id()
        if sink is None and out is None:
            sink = {"kind": "clickhouse"}
        spec = job_spec(job_id, inputs, days=days, chunk_days=chunk_days, persistent=persistent, out=out, sink=sink,
                        backend=backend, log=log)  # fmt: skip
        horizon = days
        if horizon is None:
            if spec["inputs"]["kind"] != "directory":
                raise ConfigError("days is required for inputs that are not a directory", key="days")
            from simfleet.worker.lifecycle.inputs import read_meta

            horizon = read_meta(Path(spec["inputs"]["path"]) / "meta.yaml")[1]
        return publish_lifecycle(self, spec, horizon=horizon, priority=priority)

    def job(self, job_id: str) -> LifecycleJob:
        """A handle on a lifecycle job published earlier (by anyone)."""
        handle = LifecycleJob(self, job_id)
        handle.record()
        return handle

    def study(self, study_id: str) -> Study:
        """A handle on a study published earlier (by anyone)."""
        raw = self.redis.get(STUDY_KEY.format(study_id))
        if raw is None:
            raise SimfleetError(f"no study {study_id!r} is known to this fleet (expired, or never published)")
        record = json.loads(raw)
        return Study(self, study_id, list(record["task_ids"]), record)

    def evaluator(self, priority: str = "normal", timeout_s: float | None = None) -> Evaluator:
        """An SLA-search evaluator that runs each probe's replications in parallel on the fleet."""

        def evaluate(scenario: Scenario, replications: int, seed: int) -> list[dict[str, Any]]:
            study = self.run_des(scenario, replications=replications, seed=seed, priority=priority)
            return study.summaries(timeout=timeout_s)

        return evaluate

    def sla_search(self, scenario: Scenario, **kwargs: Any) -> SlaResult:
        """:func:`simfleet.producer.sla.search_sla` with every probe's replications run in parallel on the fleet."""
        return search_sla(scenario, self.evaluator(), **kwargs)
