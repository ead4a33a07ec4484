"""``des.run`` (one replication) and ``des.aggregate`` (the chord callback of a study).

A replication is a pure function of (scenario, seed, replication index), so running it again is always safe: when
its pool process dies the message is redelivered (late ack, reject on worker lost), and when its whole worker dies
the watchdog publishes it again from the worker's list of running replications (:mod:`simfleet.shared.studies`).
If two copies run (the first worker was only cut off), the first to finish is the one the study counts; the other
ends without a result. A replication of a cancelled study ends without running, or at its next slice.

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
from simfleet.worker.des.engine import Simulation
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
    """Run one replication and return its summary (a :class:`ReplicationSummary`)."""
    request, scenario = _request(self, args, kwargs)
    node = node_name()
    task_id = self.request.id or f"{request.study_id}-{request.replication}"
    while True:
        try:
            return _run_once(self, request, scenario, node, task_id)
        except (FleetUnavailable, *UNAVAILABLE) as exc:
            logger.warning("Redis unreachable during replication %d of study %s (%s); waiting, then running it again",
                           request.replication, request.study_id, exc)  # fmt: skip
            wait_reachable(worker_settings().result_backend, timeout_s=math.inf)


def _run_once(task: Task, request: ReplicationRequest, scenario: Scenario, node: str, task_id: str) -> Any:
    registry = studies()
    if registry.cancelled(request.study_id):
        logger.info("replication %d of study %s not run: the study was cancelled", request.replication,
                    request.study_id)  # fmt: skip
        raise Ignore()
    delivery = task.request.delivery_info or {}
    registry.started(node, Running(task_id=task_id, request=request, group_id=task.request.group,
                                   group_index=task.request.group_index, chord=task.request.chord,
                                   priority=delivery.get("priority"), queue=delivery.get("routing_key") or DES_RUN,
                                   started=time.time()))  # fmt: skip
    summary: ReplicationSummary | None = None
    completed = False
    try:
        summary = _simulate(task, request, scenario)
        completed = task.AsyncResult(task_id).state != "SUCCESS" and registry.complete(task_id, node)
        if not completed:
            logger.info("replication %s: another copy completed it first; this one ends without a result", task_id)
            raise Ignore()
        return to_wire(summary)
    finally:
        registry.finished(node, task_id, study_id=request.study_id, events=summary.events if summary else 0,
                          wall_s=summary.wall_s if summary else 0.0, completed=completed)  # fmt: skip


def _simulate(task: Task, request: ReplicationRequest, scenario: Scenario) -> ReplicationSummary:
    settings = worker_settings().cpu_worker
    sim = Simulation(scenario, request.seed, request.replication)
    limit_bytes = settings.max_memory_per_replication_mb * 2**20
    process = psutil.Process()
    step = scenario.horizon_s / SLICES
    until = step
    last_report = last_cancel_check = time.monotonic()
    last_memory_check = 0.0
    logger.info("replication %d of %s started (study %s)", request.replication, scenario.name, request.study_id)
    while not sim.run(until_s=until):
        until = max(until + step, sim.next_event_s)  # a long quiet drain is one slice, not billions of empty ones
        now = time.monotonic()
        if now - last_memory_check >= MEMORY_CHECK_EVERY_S:
            last_memory_check = now
            rss = process.memory_info().rss
            if rss > limit_bytes:
                raise MemoryLimitExceeded(
                    f"replication {request.replication} of scenario {scenario.name!r} uses {rss / 2**20:.0f} MiB, "
                    f"above the limit of {settings.max_memory_per_replication_mb} MiB "
                    "(cpu_worker.max_memory_per_replication_mb)"
                )
        if now - last_cancel_check >= CANCEL_CHECK_EVERY_S:
            last_cancel_check = now
            if studies().cancelled(request.study_id):
                logger.info("replication %d of study %s stopped: the study was cancelled", request.replication,
                            request.study_id)  # fmt: skip
                raise Ignore()
        if now - last_report >= settings.progress_interval_s:
            last_report = now
            progress = ReplicationProgress(
                study_id=request.study_id, replication=request.replication, sim_time_s=sim.now,
                horizon_s=scenario.horizon_s, percent=min(100.0, 100.0 * sim.now / scenario.horizon_s),
                events=sim.events, events_per_s=sim.events / sim.wall_s if sim.wall_s else 0.0, in_flight=sim.n_sys,
            )  # fmt: skip
            report_progress(task, progress)
    summary: ReplicationSummary = sim.summary()
    logger.info("replication %d of %s done: %d events in %.2f s", request.replication, scenario.name,
                summary.events, summary.wall_s)  # fmt: skip
    return summary


@shared_task(name=DES_AGGREGATE, acks_late=True, reject_on_worker_lost=True)
def des_aggregate(summaries: list[Any], study_id: str = "") -> Any:
    """Merge a study's replication summaries exactly as the local runner does."""
    typed = [decode(ReplicationSummary, raw, what=f"{DES_AGGREGATE} summary {i}") for i, raw in enumerate(summaries)]
    result = msgspec.structs.replace(aggregate(typed), study_id=study_id)
    logger.info("study %s aggregated over %d replications", study_id or "-", len(typed))
    return to_wire(result)
