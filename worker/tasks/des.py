"""``des.run`` (one replication, or a batch of short ones) and ``des.aggregate`` (the chord callback of a study).

A replication runs on the engine its request names (the compiled kernel unless it says ``python``: both give the same
summary). A replication is a pure function of (scenario, seed, replication index), so running it again is always
safe: when its pool process dies the message is redelivered (late ack, reject on worker lost), and when its whole
worker dies the watchdog publishes it again from the worker's list of running tasks
(:mod:`simfleet.shared.studies`). If two copies of a task run (the first worker was only cut off), the first to
finish is the one the study's chord counts; the other ends without a result. A task of a cancelled study ends without
running, or at its next slice.

A batch runs its replications one after the other in this process and returns their summaries, in index order.
Each replication is recorded as it ends (counted once, whatever the batching and however many copies ran it), and
its summary is kept until the batch completes: a copy of the batch published again after its worker died runs only
the replications not yet recorded.

The simulation advances in slices of simulated time; between slices the task reports PROGRESS (at most once per
``progress_interval_s``, to the result backend and to Flower: :mod:`simfleet.worker.tasks.reporting`), checks the
process's resident memory against the per-replication limit, and (at most once a second) whether its study was
cancelled. When Redis cannot be reached past the client's retries, the task waits for it and runs the replication
again.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any

import msgspec
import psutil
from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger

from simfleet.shared.celery_app import DES_AGGREGATE, DES_RUN
from simfleet.shared.errors import FleetUnavailable, MemoryLimitExceeded, MessageError, ScenarioError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import ReplicationSummary
from simfleet.shared.messages.study import ReplicationProgress, ReplicationRequest
from simfleet.shared.redis_client import UNAVAILABLE, connect, wait_reachable
from simfleet.shared.studies import Running, Studies
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.engines import simulation
from simfleet.worker.des.scenario import Scenario, parse_scenario
from simfleet.worker.runtime import worker_settings
from simfleet.worker.stages import node_name
from simfleet.worker.tasks.reporting import report_progress

logger = get_task_logger(__name__)
SLICES = 50
MEMORY_CHECK_EVERY_S = 0.1
"""Reading the resident size costs tens of microseconds: check it at most this often (and at the first slice)."""
CANCEL_CHECK_EVERY_S = 1.0


@lru_cache(maxsize=8)
def _parsed(document: str, study_id: str) -> Scenario:
    """Validated scenarios by content: a study's replications share one, so each process parses it once."""
    try:
        data = msgspec.json.decode(document)
    except msgspec.DecodeError as exc:
        raise MessageError(f"{DES_RUN} message", f"the scenario is not JSON: {exc}", path="$.scenario") from exc
    return parse_scenario(data, source=f"study {study_id}")


@lru_cache(maxsize=1)
def studies() -> Studies:
    """This process's view of study records and running replications."""
    settings = worker_settings()
    return Studies(connect(settings.result_backend, retry_s=settings.redis_retry_s),
                   expires_s=settings.records_expire_s)  # fmt: skip


def _request(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[ReplicationRequest, Scenario]:
    try:
        if len(args) != 1 or set(kwargs) - {"study_id"}:
            raise MessageError(f"{DES_RUN} message", f"expected one replication request, got {len(args)} "
                               f"argument(s) and keywords {sorted(kwargs)}")  # fmt: skip
        request = decode(ReplicationRequest, args[0], what=f"{DES_RUN} message")
        return request, _parsed(request.scenario, request.study_id)
    except (MessageError, ScenarioError) as exc:
        logger.error("rejected a malformed message: %s", exc)
        raise Ignore() from exc


@shared_task(name=DES_RUN, bind=True, acks_late=True, reject_on_worker_lost=True)
def des_run(self: Task, *args: Any, **kwargs: Any) -> Any:
    """Run a batch of replications and return their summaries (a list of :class:`ReplicationSummary`)."""
    request, scenario = _request(self, args, kwargs)
    node = node_name()
    task_id = self.request.id or f"{request.study_id}-{request.replication}"
    while True:
        try:
            return _run_once(self, request, scenario, node, task_id)
        except (FleetUnavailable, *UNAVAILABLE) as exc:
            logger.warning("Redis unreachable during replications %s of study %s (%s); waiting, then running them "
                           "again", _named(request), request.study_id, exc)  # fmt: skip
            wait_reachable(worker_settings().result_backend, timeout_s=math.inf)


def _named(request: ReplicationRequest) -> str:
    """The batch's replications in words, for the log."""
    last = request.replication + request.count - 1
    return str(request.replication) if request.count == 1 else f"{request.replication}-{last}"


def _run_once(task: Task, request: ReplicationRequest, scenario: Scenario, node: str, task_id: str) -> Any:
    registry = studies()
    if registry.cancelled(request.study_id):
        logger.info("replications %s of study %s not run: the study was cancelled", _named(request),
                    request.study_id)  # fmt: skip
        raise Ignore()
    delivery = task.request.delivery_info or {}
    registry.started(node, Running(task_id=task_id, request=request, group_id=task.request.group,
                                   group_index=task.request.group_index, chord=task.request.chord,
                                   priority=delivery.get("priority"), queue=delivery.get("routing_key") or DES_RUN,
                                   started=time.time()))  # fmt: skip
    try:
        summaries = _run_batch(task, request, scenario, node)
        if task.AsyncResult(task_id).state == "SUCCESS" or not registry.complete(task_id, node):
            logger.info("task %s: another copy completed it first; this one ends without a result", task_id)
            raise Ignore()
        registry.forget_summaries(request.study_id, request.indices)
        return [to_wire(summary) for summary in summaries]
    finally:
        registry.finished(node, task_id)


def _run_batch(task: Task, request: ReplicationRequest, scenario: Scenario, node: str) -> list[ReplicationSummary]:
    """The batch's summaries in index order: those an earlier copy recorded, and the others run here, one by one."""
    registry = studies()
    kept = registry.recorded_summaries(request.study_id, request.indices)
    if kept:
        logger.info("replications %s of study %s: %d recorded by an earlier copy of this batch are not run again",
                    _named(request), request.study_id, len(kept))  # fmt: skip
    summaries = []
    last = request.indices[-1]
    for index in request.indices:
        if index in kept:
            summaries.append(kept[index])
            continue
        if index != request.replication and registry.cancelled(request.study_id):
            logger.info("replication %d of study %s not run: the study was cancelled", index, request.study_id)
            raise Ignore()
        summary = _simulate(task, request, index, scenario)
        registry.record(node, request.study_id, summary, keep=index != last)
        summaries.append(summary)
    return summaries


def _simulate(task: Task, request: ReplicationRequest, index: int, scenario: Scenario) -> ReplicationSummary:
    """Run replication ``index`` of the request's batch, reporting progress and watching memory and cancellation."""
    settings = worker_settings().cpu_worker
    sim = simulation(scenario, request.seed, index, request.engine)
    limit_bytes = settings.max_memory_per_replication_mb * 2**20
    process = psutil.Process()
    last_report = last_cancel_check = time.monotonic()
    last_memory_check = 0.0
    logger.info("replication %d of %s started on the %s engine (study %s)", index, scenario.name, request.engine,
                request.study_id)  # fmt: skip
    for _ in sim.slices(SLICES):
        now = time.monotonic()
        if now - last_memory_check >= MEMORY_CHECK_EVERY_S:
            last_memory_check = now
            rss = process.memory_info().rss
            if rss > limit_bytes:
                raise MemoryLimitExceeded(
                    f"replication {index} of scenario {scenario.name!r} uses {rss / 2**20:.0f} MiB, "
                    f"above the limit of {settings.max_memory_per_replication_mb} MiB "
                    "(cpu_worker.max_memory_per_replication_mb)"
                )
        if now - last_cancel_check >= CANCEL_CHECK_EVERY_S:
            last_cancel_check = now
            if studies().cancelled(request.study_id):
                logger.info("replication %d of study %s stopped: the study was cancelled", index, request.study_id)
                raise Ignore()
        if now - last_report >= settings.progress_interval_s:
            last_report = now
            progress = ReplicationProgress(
                study_id=request.study_id, replication=index, sim_time_s=sim.now,
                horizon_s=scenario.horizon_s, percent=min(100.0, 100.0 * sim.now / scenario.horizon_s),
                events=sim.events, events_per_s=sim.events / sim.wall_s if sim.wall_s else 0.0, in_flight=sim.n_sys,
            )  # fmt: skip
            report_progress(task, progress)
    summary: ReplicationSummary = sim.summary()
    logger.info("replication %d of %s done: %d events in %.2f s", index, scenario.name,
                summary.events, summary.wall_s)  # fmt: skip
    return summary


@shared_task(name=DES_AGGREGATE, acks_late=True, reject_on_worker_lost=True)
def des_aggregate(batches: list[Any], study_id: str = "") -> Any:
    """Merge a study's replication summaries (a list per batch, in task order) exactly as the local runner does."""
    if not isinstance(batches, list) or not all(isinstance(batch, list) for batch in batches):
        raise MessageError(f"{DES_AGGREGATE} results", "expected a list of summaries per des.run task")
    flat = [raw for batch in batches for raw in batch]
    typed = [decode(ReplicationSummary, raw, what=f"{DES_AGGREGATE} summary {i}") for i, raw in enumerate(flat)]
    result = msgspec.structs.replace(aggregate(typed), study_id=study_id)
    logger.info("study %s aggregated over %d replications", study_id or "-", len(typed))
    return to_wire(result)
