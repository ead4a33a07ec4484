"""The typed client that ETL code (and the command line) uses to publish work to the fleet and follow it.

``Fleet`` publishes lifecycle jobs (:mod:`simfleet.producer.fleet.lifecycle`) and DES studies
(:mod:`simfleet.producer.fleet.study`), lists them, and waits for several at once; it is a context manager that
releases its connections. Every Redis error it meets is a :class:`~simfleet.shared.errors.FleetUnavailable` naming
the URL (password hidden); work that fails is a :class:`~simfleet.shared.errors.JobFailed` or
:class:`~simfleet.shared.errors.StudyFailed` with fields to branch on.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from simfleet.producer.fleet.arguments import choice, instance, seconds, time_limit, whole, work_id
from simfleet.producer.fleet.lifecycle import LifecycleJob, submit
from simfleet.producer.fleet.study import Study, StudyProgress, publish_study
from simfleet.shared.errors import ConfigError, FleetUnavailable, JobFailed, StudyFailed, WorkFailed
from simfleet.shared.heartbeats import Heartbeats
from simfleet.shared.jobs import JobRecord, Jobs
from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
from simfleet.shared.messages.lifecycle import Inputs, JobSummary, Sink
from simfleet.shared.messages.plan import Ensemble
from simfleet.shared.messages.study import DEFAULT_ENGINE, ENGINES, SEED_MAX, StudyRecord
from simfleet.shared.redis_client import connect, translate
from simfleet.shared.settings import PRIORITIES, Settings, load_settings
from simfleet.shared.studies import Studies

if TYPE_CHECKING:
    from celery import Celery

    from simfleet.producer.bottleneck import BottleneckResult
    from simfleet.producer.capacity import CapacityResult
    from simfleet.producer.confidence import SlaTerm
    from simfleet.producer.precision import OnRound, PreciseResult
    from simfleet.producer.sla import Evaluator, SlaResult
    from simfleet.shared.checkpoints import Checkpoints
    from simfleet.worker.des.scenario import Scenario

# Celery, the scenario parser and the SLA search (scipy) are imported on first use: a client that only reads records
# (``simfleet job status``) starts without them.

Handle = LifecycleJob | Study
POLL_RETRY_S = 3.0
"""How long the producer's Redis commands retry before an outage is reported (its waits go on, reconnecting)."""


class Fleet:
    """The fleet as seen from a producer: publish jobs and studies, follow them, search SLAs with the workers.

    Args:
        settings: the fleet's settings (broker, result backend, checkpoint store, ClickHouse).
        app: a Celery app to publish with (default: one built from ``settings``, polling for results).
    """

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.settings = settings
        self._app = app
        self.redis = connect(settings.result_backend, retry_s=min(settings.redis_retry_s, POLL_RETRY_S))
        self.records = Jobs(self.redis, expires_s=settings.records_expire_s)
        self.study_records = Studies(self.redis, expires_s=settings.records_expire_s)
        self.heartbeats = Heartbeats(self.redis)
        self._checkpoints: Checkpoints | None = None
        self._replication_s: dict[tuple[str, str], float] = {}

    @property
    def app(self) -> Celery:
        """The Celery app this client publishes with (built on first use, polling for results)."""
        if self._app is None:
            from simfleet.producer.fleet.backend import polling_backend_url
            from simfleet.shared.celery_app import create_app

            app = create_app(self.settings, name="simfleet-producer")
            app.conf.result_backend = polling_backend_url(self.settings.result_backend)
            # A producer reports an outage (its waits say "reconnecting") instead of blocking until Redis returns.
            app.conf.result_backend_always_retry = False
            app.conf.task_publish_retry_policy = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}
            self._app = app
        return self._app

    @classmethod
    def from_settings(cls, settings: Settings | str | Path | None = None) -> Fleet:
        """A client from settings, a settings file path, or the default settings lookup."""
        if not isinstance(settings, Settings):
            settings = load_settings(settings)
        return cls(settings)

    def close(self) -> None:
        """Release connections."""
        self.redis.close()
        if self._app is not None:
            self._app.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- plumbing

    @contextlib.contextmanager
    def translate(self) -> Iterator[None]:
        """Redis errors inside the block become :class:`FleetUnavailable` naming the result backend."""
        with translate(self.settings.result_backend):
            yield

    def checkpoints(self) -> Checkpoints:
        """The fleet's checkpoint store and references (opened on first use)."""
        if self._checkpoints is None:
            from simfleet.shared.checkpoints import Checkpoints

            self._checkpoints = Checkpoints.from_settings(self.settings, self.redis)
        return self._checkpoints

    def task_meta(self, task_id: str) -> dict[str, Any]:
        """A task's state and result in the result backend (``PENDING`` when unknown)."""
        with self.translate():
            meta: dict[str, Any] = self.app.backend.get_task_meta(task_id)
        return meta

    def consumers(self, queue: str) -> list[str]:
        """Live workers (by their heartbeats) that consume ``queue``."""
        with self.translate():
            nodes = self.heartbeats.nodes()
        return sorted(name for name, info in nodes.items() if queue in info.get("queues", []))

    def des_processes(self) -> int:
        """Pool processes of the live workers consuming ``des.run`` (this machine's cores when none is seen)."""
        from simfleet.producer.fleet.batching import local_processes

        with self.translate():
            nodes = self.heartbeats.nodes()
        queue = self.settings.queues.des_run
        found = [info.get("concurrency") for info in nodes.values() if queue in info.get("queues", [])]
        total = sum(n if isinstance(n, int) and n > 0 else 1 for n in found)
        return total or local_processes()

    def replication_s(self, scenario: str, engine: str = DEFAULT_ENGINE) -> float | None:
        """Measured seconds of one replication of the scenario named so on ``engine`` (its last study here), if any."""
        return self._replication_s.get((scenario, engine))

    def measured(self, scenario: str, replication_s: float, engine: str = DEFAULT_ENGINE) -> None:
        """Note the measured seconds of one replication of ``scenario`` on ``engine`` (a study's mean, or a pilot)."""
        if math.isfinite(replication_s) and replication_s > 0:
            self._replication_s[(scenario, engine)] = replication_s

    def jobs_exists(self, job_id: str) -> bool:
        """Whether a job of this id is recorded."""
        work_id(job_id, key="job_id")
        with self.translate():
            return self.records.get(job_id) is not None

    # ------------------------------------------------------------------------------------------ lifecycle jobs

    def run_lifecycle(
        self,
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
        ensemble: Ensemble | dict[str, Any] | str | Path | None = None,
    ) -> LifecycleJob:
        """Publish a lifecycle job: load, create, execute in chunks of ``chunk_days``, export.

        Args:
            inputs: an inputs directory on this machine (validated here, then sent as ``via`` says), or a
                ``ClickHouseInputs`` version already imported (``simfleet db import-inputs``).
            days: the horizon, 1 to ``MAX_DAYS`` (65535) (default: the inputs' own; required for a ClickHouse
                version).
            chunk_days: days per execute stage (a checkpoint at the end of each), 1 to ``MAX_DAYS``.
            persistent: keep the simulation alive in the owner's memory between stages; ``False`` restores it
                from the checkpoints at every stage (the fallback mode, and the baseline of the benchmark).
            sink: ``"clickhouse"`` (the workers' ``clickhouse_dsn``; or a ``ClickHouseSink`` naming a DSN) or
                ``"none"`` (MP2 stays in the result checkpoints: :meth:`LifecycleJob.export` writes it anywhere).
            backend: the lifecycle backend (default: the worker's ``gpu_worker.backend``).
            log: ``full`` (per airframe and day) or ``aggregates``.
            priority: high, normal or background.
            job_id: the job's id (default: a fresh one): 1 to 64 of ``A-Z a-z 0-9 . _ -``, starting with a letter
                or a digit (:mod:`simfleet.shared.ids`).
            via: how a directory's inputs travel: ``store`` (a blob in the fleet's checkpoint store) or
                ``clickhouse`` (imported as a new version first).
            ensemble: plan variants x replications with maintenance options (docs/lifecycle.md, "Planning"): an
                ``Ensemble``, the same as plain data (a variants file's content), or the path of a variants file on
                this machine; decoded and checked against the inputs' horizon here (errors name the file or
                ``ensemble`` and the key), then run by the workers as one stacked simulation. ``None``: today's
                single deterministic run.

        Raises:
            ConfigError: an option is of the wrong type or out of its range (``key`` names it, the message says
                what it accepts: see :mod:`simfleet.producer.fleet.arguments`); nothing was published.
            InputError: the inputs are invalid (naming the file, row and field); nothing was published.
            FleetUnavailable: Redis cannot be reached.
        """
        return submit(self, inputs=inputs, days=days, chunk_days=chunk_days, persistent=persistent, sink=sink,
                      backend=backend, log=log, priority=priority, job_id=job_id, via=via,
                      ensemble=ensemble)  # fmt: skip

    def job(self, job_id: str) -> LifecycleJob:
        """A handle on a lifecycle job published earlier (by anyone).

        Raises:
            ConfigError: ``job_id`` is not a valid id (nothing is asked of Redis).
            JobFailed: no such job.
        """
        handle = LifecycleJob(self, job_id)
        handle.record()
        return handle

    def jobs(self, limit: int = 100) -> list[JobRecord]:
        """The newest ``limit`` lifecycle jobs still recorded, newest first."""
        limit = whole(limit, key="limit")
        with self.translate():
            records = [self.records.get(job_id) for job_id in self.records.listed(limit)]
        return [record for record in records if record is not None]

    # --------------------------------------------------------------------------------------------- DES studies

    def run_des(self, scenario: Scenario | str | Path | dict[str, Any], *, replications: int | None = None,
                seed: int | None = None, priority: str = "normal", first: int = 0,
                batch: int | None = None, engine: str = DEFAULT_ENGINE) -> Study:  # fmt: skip
        """Publish a DES study: replications first..first+n-1 of ``scenario`` with ``seed``, then their aggregation.

        Args:
            scenario: a ``Scenario``, a scenario file (``str`` or ``Path``), or its plain-data form (``dict``).
            replications: how many, at least 1 (default: the scenario's own).
            seed: the study seed, 0 to 2**63 - 1 (default: the scenario's own).
            priority: high, normal or background.
            first: the index of the first replication (default 0): more replications of an earlier study are the
                same study's continuation when they start at its count (replication i is the same run everywhere).
            batch: replications per ``des.run`` task, 1 to ``MAX_BATCH`` (default: sized from a measured run time,
                ``des.batch_target_s``: :mod:`simfleet.producer.fleet.batching`). It never changes the results.
            engine: ``compiled`` (the default) or ``python``: the DES engine the workers run. It never changes the
                results either, only how long they take (docs/des.md, "The compiled kernel").

        Raises:
            ConfigError, ScenarioError: the scenario or an option is invalid (naming it); nothing was published.
            FleetUnavailable: Redis cannot be reached.
        """
        return publish_study(self, scenario, replications=replications, seed=seed, priority=priority, first=first,
                             batch=batch, engine=engine)  # fmt: skip

    def run_des_to_precision(self, scenario: Scenario | str | Path | dict[str, Any], *, precision: float,
                             replications: int | None = None, max_replications: int | None = None,
                             seed: int | None = None, priority: str = "normal", timeout_s: float | None = None,
                             on_round: OnRound | None = None,
                             on_progress: Callable[[StudyProgress], None] | None = None,
                             batch: int | None = None, engine: str = DEFAULT_ENGINE) -> PreciseResult:  # fmt: skip
        """Run ``scenario`` in rounds until every figure's 95% half-width is within ``precision`` of its value.

        Each round is one study (:meth:`run_des` with ``first`` at the count so far), its replications in parallel on
        the workers; the rule, the figures and the stopping are :mod:`simfleet.producer.precision`'s. The answer
        equals a local run of the same replications, bit for bit (but for wall-clock figures).

        Args:
            scenario: what :meth:`run_des` accepts.
            precision: the target, a fraction strictly between 0 and 1 (0.02 for 2%).
            replications: the first round, at least 2 (default: the scenario's own, at least 2).
            max_replications: the cap, at least ``replications`` (default
                :data:`~simfleet.producer.precision.DEFAULT_MAX_REPLICATIONS`, or ``replications`` if more).
            seed: the study seed, 0 to 2**63 - 1 (default: the scenario's own).
            priority: high, normal or background.
            timeout_s: the longest wait for one round (default: no limit).
            on_round: told of each round before it is published (:data:`~simfleet.producer.precision.OnRound`).
            on_progress: called with each round's :class:`StudyProgress` while it runs.
            batch: replications per task (:meth:`run_des`; default: sized from the rounds before).
            engine: the DES engine (:meth:`run_des`).

        Raises:
            ConfigError, ScenarioError: the scenario or an argument is invalid (naming it); nothing was published.
            StudyFailed: a round's study failed or timed out.
            FleetUnavailable: Redis cannot be reached.
        """
        from simfleet.producer.precision import DEFAULT_MAX_REPLICATIONS, check_precision, run_to_precision
        from simfleet.worker.des.limits import MAX_REPLICATIONS
        from simfleet.worker.des.scenario import as_scenario

        precision = check_precision(precision, key="precision")
        if replications is not None:
            replications = whole(replications, key="replications", low=2, high=MAX_REPLICATIONS)
        if max_replications is not None:
            max_replications = whole(max_replications, key="max_replications", low=2, high=MAX_REPLICATIONS)
        if seed is not None:
            seed = whole(seed, key="seed", low=0, high=SEED_MAX)
        evaluate = self.evaluator(priority, timeout_s, on_progress, batch, engine)
        scenario = as_scenario(scenario)
        initial = max(2, scenario.replications) if replications is None else replications
        cap = max(initial, DEFAULT_MAX_REPLICATIONS) if max_replications is None else max_replications
        if cap < initial:
            raise ConfigError(f"must be at least the first round's {initial} replications, got {cap}",
                              key="max_replications")  # fmt: skip
        return run_to_precision(scenario, evaluate, precision=precision, seed=scenario.seed if seed is None else seed,
                                initial=initial, cap=cap, on_round=on_round)  # fmt: skip

    def study(self, study_id: str) -> Study:
        """A handle on a study published earlier (by anyone).

        Raises:
            ConfigError: ``study_id`` is not a valid id (nothing is asked of Redis).
            StudyFailed: no such study (expired, or never published).
        """
        study_id = work_id(study_id, key="study_id")
        with self.translate():
            record = self.study_records.get(study_id)
        if record is None:
            raise StudyFailed(study_id, "not known to this fleet (expired, or never published)",
                              error_type="UnknownStudy")  # fmt: skip
        return Study(self, record)

    def studies(self, limit: int = 100) -> list[StudyRecord]:
        """The newest ``limit`` studies still recorded, newest first."""
        limit = whole(limit, key="limit")
        with self.translate():
            return self.study_records.listed(limit)

    def evaluator(self, priority: str = "normal", timeout_s: float | None = None,
                  on_progress: Callable[[StudyProgress], None] | None = None,
                  batch: int | None = None, engine: str = DEFAULT_ENGINE) -> Evaluator:  # fmt: skip
        """An SLA-search evaluator that runs each probe's replications in parallel on the fleet.

        ``on_progress`` (a progress display) is called with each probe's :class:`StudyProgress` while it runs;
        ``batch`` and ``engine`` are :meth:`run_des`'s (batch default: sized from the measured run time of the
        probes before).

        Raises:
            ConfigError: an unknown priority or engine, a timeout that is not a finite number above 0 (or None), or a
                batch out of range.
        """
        from simfleet.shared.messages.study import MAX_BATCH

        priority = choice(priority, key="priority", choices=tuple(PRIORITIES))
        timeout_s = time_limit(timeout_s, key="timeout_s")
        if batch is not None:
            batch = whole(batch, key="batch", low=1, high=MAX_BATCH)
        chosen = choice(engine, key="engine", choices=ENGINES)

        def evaluate(scenario: Scenario, replications: int, seed: int, first: int = 0) -> list[ReplicationSummary]:
            study = self.run_des(scenario, replications=replications, seed=seed, priority=priority, first=first,
                                 batch=batch, engine=chosen)  # fmt: skip
            if on_progress is not None:
                study.wait(timeout=timeout_s, on_progress=on_progress)
            return study.summaries(timeout=timeout_s)

        return evaluate

    def sla_search(self, scenario: Scenario | str | Path | dict[str, Any], *, priority: str = "normal",
                   timeout_s: float | None = None, batch: int | None = None, engine: str = DEFAULT_ENGINE,
                   **kwargs: Any) -> SlaResult:  # fmt: skip
        """:func:`simfleet.producer.sla.search_sla` with every probe's replications in parallel on the fleet.

        ``scenario`` is what :meth:`run_des` accepts (a ``Scenario``, a file, or its plain-data form); ``priority``,
        ``timeout_s`` (per probe), ``batch`` and ``engine`` are the evaluator's (:meth:`evaluator`); the other
        keywords are :func:`~simfleet.producer.sla.search_sla`'s.

        Raises:
            ConfigError, ScenarioError: the scenario or an option is invalid (naming it); nothing was published.
        """
        from simfleet.producer.sla import search_sla
        from simfleet.worker.des.scenario import as_scenario

        evaluate = self.evaluator(priority, timeout_s, batch=batch, engine=engine)
        for key in ("replications", "max_replications"):
            if kwargs.get(key) is not None:
                kwargs[key] = whole(kwargs[key], key=key)
        if "seed" in kwargs:
            kwargs["seed"] = whole(kwargs["seed"], key="seed", low=0, high=SEED_MAX)
        return search_sla(as_scenario(scenario), evaluate, **kwargs)

    def bottlenecks(self, scenario: Scenario | str | Path | dict[str, Any], *,
                    slas: Sequence[SlaTerm | str] | None = None, replications: int = 10, seed: int | None = None,
                    priority: str = "normal", timeout_s: float | None = None,
                    batch: int | None = None, engine: str = DEFAULT_ENGINE) -> BottleneckResult:  # fmt: skip
        """:func:`simfleet.producer.bottleneck.find_bottlenecks` with every run's replications in parallel on the fleet.

        ``scenario`` is what :meth:`run_des` accepts; ``slas``, ``replications`` (at least 2) and ``seed`` are
        :func:`~simfleet.producer.bottleneck.find_bottlenecks`'s; ``priority``, ``timeout_s`` (per run), ``batch`` and
        ``engine`` are the evaluator's (:meth:`evaluator`). The base and each resource with one more step are studies
        run one after the other, each with the same replication indices.

        Raises:
            ConfigError, ScenarioError: the scenario or an argument is invalid (naming it); nothing was published.
        """
        from simfleet.producer.bottleneck import check_arguments, find_bottlenecks
        from simfleet.worker.des.scenario import as_scenario

        chosen = as_scenario(scenario)
        _, replications, seed = check_arguments(chosen, slas, replications, seed)
        evaluate = self.evaluator(priority, timeout_s, batch=batch, engine=engine)
        return find_bottlenecks(chosen, evaluate, slas=slas, replications=replications, seed=seed)

    def capacity_search(self, scenario: Scenario | str | Path | dict[str, Any], *, priority: str = "normal",
                        timeout_s: float | None = None, batch: int | None = None, engine: str = DEFAULT_ENGINE,
                        **kwargs: Any) -> CapacityResult:  # fmt: skip
        """:func:`simfleet.producer.capacity.search_capacity` with every candidate's replications in parallel here.

        ``scenario`` is what :meth:`run_des` accepts; ``priority``, ``timeout_s`` (per candidate), ``batch`` and
        ``engine`` are the evaluator's (:meth:`evaluator`); the other keywords (``slas``, ``resources``, ``costs``,
        ``replications``, ``max_replications``, ``seed``, ``max_steps``, ``max_probes``) are
        :func:`~simfleet.producer.capacity.search_capacity`'s, checked before anything is published.

        Raises:
            ConfigError, ScenarioError: the scenario or an option is invalid (naming it); nothing was published.
        """
        from simfleet.producer.capacity import search_capacity
        from simfleet.worker.des.scenario import as_scenario

        evaluate = self.evaluator(priority, timeout_s, batch=batch, engine=engine)
        return search_capacity(as_scenario(scenario), evaluate, **kwargs)

    # ------------------------------------------------------------------------------------------------- waiting

    def wait_all(self, handles: Sequence[Handle], timeout: float | None = None, *, poll_s: float = 0.2,
                 return_exceptions: bool = False) -> list[JobSummary | StudyAggregate | WorkFailed]:  # fmt: skip
        """Wait for several jobs and studies; their results in the order given.

        Args:
            handles: lifecycle jobs and studies.
            timeout: for all of them together.
            poll_s: how often each unfinished one is looked at.
            return_exceptions: put a failed one's :class:`WorkFailed` in its place instead of raising it.

        Raises:
            WorkFailed: the first to fail (unless ``return_exceptions``), or a timeout (``timed_out`` true).
        """
        timeout = time_limit(timeout)
        poll_s = seconds(poll_s, key="poll_s")
        for handle in handles:
            instance(handle, (LifecycleJob, Study), key="handles", accepted="a list of LifecycleJob and Study handles")
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        results: dict[int, JobSummary | StudyAggregate | WorkFailed] = {}
        while len(results) < len(handles):
            for index, handle in enumerate(handles):
                if index in results:
                    continue
                try:
                    if handle.finished():
                        results[index] = handle.wait(timeout=10.0)
                except (JobFailed, StudyFailed) as exc:
                    if not return_exceptions:
                        raise
                    results[index] = exc
                except FleetUnavailable:
                    pass  # Redis restarting: look again next round
            if len(results) < len(handles):
                if time.monotonic() > deadline:
                    waiting = [handles[i].id for i in range(len(handles)) if i not in results]
                    error = JobFailed if isinstance(handles[0], LifecycleJob) else StudyFailed
                    raise error(", ".join(waiting), f"did not finish within {timeout} s; they go on",
                                error_type="Timeout", timed_out=True)  # fmt: skip
                time.sleep(poll_s)
        return [results[index] for index in range(len(handles))]


__all__ = ["Fleet", "Handle", "Study", "StudyProgress"]
