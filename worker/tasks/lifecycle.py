"""The four stages of a lifecycle job as Celery tasks (thin: the work is in :mod:`simfleet.worker.stages`).

Each task receives one :class:`~simfleet.shared.messages.lifecycle.StageMessage`, validated when it arrives:

- a malformed or foreign message is rejected with a log line naming the task and the field; no job record is
  touched and the worker keeps serving;
- a message that is not the job's due stage (an older or newer epoch, a duplicate, a job that ended) ends as
  ``REJECTED`` with the reason and changes nothing;
- when Redis cannot be reached (an outage longer than the client's retries), the stage drops its live session, waits
  until Redis answers again and runs once more from the record and the checkpoints; every effect of a stage is
  fenced, so running it again never applies anything twice;
- any other error fails the job, fenced by the message's epoch: a worker that lost the job cannot fail it.

A running execute or export stage reports ``PROGRESS`` (to the result backend and, as an event, to Flower; see
:mod:`simfleet.worker.tasks.reporting`) at most once per ``gpu_worker.progress_interval_s``. A finished stage returns
a small summary (:func:`stage_result`): the job, the stage, the days done, the next stage or ``done``, its seconds.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any

from celery import Task, current_app, shared_task
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger

from simfleet.shared.celery_app import (
    LIFECYCLE_CREATE,
    LIFECYCLE_EXECUTE,
    LIFECYCLE_EXPORT,
    LIFECYCLE_LOAD,
    publish_stage,
)
from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import FleetUnavailable, MessageError, StaleOwner
from simfleet.shared.jobs import Jobs, worker_queue
from simfleet.shared.messages import decode
from simfleet.shared.messages.lifecycle import JobFailure, JobSummary, StageMessage, StageProgress
from simfleet.shared.redis_client import UNAVAILABLE, connect, wait_reachable
from simfleet.worker.runtime import worker_settings
from simfleet.worker.sessions import SessionRegistry
from simfleet.worker.stages import Stages, node_name
from simfleet.worker.tasks.reporting import report_progress

logger = get_task_logger(__name__)


def publish(message: StageMessage, queue: str, priority: str) -> None:
    """Publish a stage message with this worker's app."""
    publish_stage(current_app, message, queue, priority)


@lru_cache(maxsize=1)
def stages() -> Stages:
    """This process's stage runner and session registry (created in the pool process, never in the parent)."""
    settings = worker_settings()
    gpu = settings.gpu_worker
    client = connect(settings.result_backend, retry_s=settings.redis_retry_s)
    node = node_name()
    return Stages(
        node,
        worker_queue(node),
        Jobs(client, expires_s=settings.records_expire_s),
        Checkpoints.from_settings(settings, client),
        SessionRegistry(gpu.memory_budget_mb * 2**20),
        publish,
        default_backend=gpu.backend,
        clickhouse_dsn=settings.clickhouse_dsn,
        progress_interval_s=gpu.progress_interval_s,
    )


def run_stage(task: Task, stage: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Decode the message, run the stage, and handle refusals, Redis outages and failures as the module says."""
    try:
        if len(args) != 1 or set(kwargs) - {"job_id"}:
            raise MessageError(f"{task.name} message", f"expected one stage message, got {len(args)} argument(s) "
                               f"and keywords {sorted(kwargs)}")  # fmt: skip
        message = decode(StageMessage, args[0], what=f"{task.name} message")
        if message.stage != stage:
            raise MessageError(f"{task.name} message", f"a {message.stage} stage sent to the {stage} task")
    except MessageError as exc:
        logger.error("rejected a malformed message: %s", exc)
        raise Ignore() from exc
    runner = stages()

    def report(figures: StageProgress) -> None:
        report_progress(task, figures)

    while True:
        try:
            started = time.perf_counter()
            outcome = runner.run(message, report)
            return stage_result(message, outcome, time.perf_counter() - started)
        except StaleOwner as exc:
            runner.registry.drop(message.job_id)
            logger.warning("refused: %s", exc)
            task.update_state(state="REJECTED", meta={"job_id": message.job_id, "reason": str(exc)})
            raise Ignore() from exc
        except (FleetUnavailable, *UNAVAILABLE) as exc:
            runner.registry.drop(message.job_id)
            logger.warning("Redis unreachable during %s of job %s (%s); waiting for it, then running the stage "
                           "again", stage, message.job_id, exc)  # fmt: skip
            wait_reachable(worker_settings().result_backend, timeout_s=math.inf)
        except Exception as exc:
            runner.registry.drop(message.job_id)
            _fail(runner, message, task.name, exc)
            raise


def stage_result(message: StageMessage, outcome: StageMessage | JobSummary, seconds: float) -> dict[str, Any]:
    """What a finished stage task returns: a small summary that reads well in Flower and ``AsyncResult``.

    The job's figures are in its record (``simfleet job status``); the next stage's message is on its way to the
    owner's queue. ``days_done`` is how far the job has simulated when the stage ends.
    """
    if isinstance(outcome, JobSummary):
        days_done, next_stage = outcome.days, "done"
    else:
        days_done = message.until if message.stage == "execute" else 0
        next_stage = f"execute to day {outcome.until}" if outcome.stage == "execute" else outcome.stage
    return {"job": message.job_id, "stage": message.stage, "days_done": days_done, "next": next_stage,
            "seconds": round(seconds, 3)}  # fmt: skip


def _fail(runner: Stages, message: StageMessage, task_name: str, exc: Exception) -> None:
    """Fail the job, fenced by the message's epoch (waiting out a Redis outage to do so)."""
    failure = JobFailure(stage=task_name, error_type=type(exc).__name__, message=str(exc))
    while True:
        try:
            if not runner.jobs.fail(message.job_id, message.epoch, failure):
                logger.warning("job %s not marked failed: it moved on past epoch %d", message.job_id, message.epoch)
            return
        except UNAVAILABLE:
            wait_reachable(worker_settings().result_backend, timeout_s=math.inf)


# No STARTED state in the result backend: a stage records in the job's record when it starts and reports PROGRESS
# while it runs; the extra write per stage would only cost time. (Flower still shows STARTED, from the worker's
# task-started event, until the first PROGRESS report.)
STAGE_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "track_started": False}


@shared_task(name=LIFECYCLE_LOAD, **STAGE_OPTIONS)
def load(self: Task, *args: Any, **kwargs: Any) -> Any:
    """Claim the job, read and validate its inputs, build the environment."""
    return run_stage(self, "load", args, kwargs)


@shared_task(name=LIFECYCLE_CREATE, **STAGE_OPTIONS)
def create(self: Task, *args: Any, **kwargs: Any) -> Any:
    """Create the population."""
    return run_stage(self, "create", args, kwargs)


@shared_task(name=LIFECYCLE_EXECUTE, **STAGE_OPTIONS)
def execute(self: Task, *args: Any, **kwargs: Any) -> Any:
    """Run one chunk of days, reporting PROGRESS."""
    return run_stage(self, "execute", args, kwargs)


@shared_task(name=LIFECYCLE_EXPORT, **STAGE_OPTIONS)
def export(self: Task, *args: Any, **kwargs: Any) -> Any:
    """Write MP2 to the job's sink and finish the job."""
    return run_stage(self, "export", args, kwargs)
