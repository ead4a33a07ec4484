"""The four stages of a lifecycle job as Celery tasks (thin: the work is in :mod:`simfleet.worker.stages`).

Each task takes the previous stage's handoff (the load stage: the job spec) and the ``job_id`` keyword (for the
logs). A stage refused for a stale epoch ends in the ``REJECTED`` state with the reason and is not retried: the job
lives on with its current owner. Any other error fails the job (its record says why) and the chain stops.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger

from simfleet.shared.celery_app import LIFECYCLE_CREATE, LIFECYCLE_EXECUTE, LIFECYCLE_EXPORT, LIFECYCLE_LOAD
from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import StaleOwner
from simfleet.shared.jobs import Jobs, worker_queue
from simfleet.worker.runtime import worker_settings
from simfleet.worker.sessions import SessionRegistry
from simfleet.worker.stages import Stages, node_name

logger = get_task_logger(__name__)


@lru_cache(maxsize=1)
def stages() -> Stages:
    """This process's stage runner and session registry (created in the pool process, never in the parent)."""
    settings = worker_settings()
    gpu = settings.gpu_worker
    client = redis.Redis.from_url(settings.result_backend)
    node = node_name()
    return Stages(
        node,
        worker_queue(node),
        Jobs(client, expires_s=settings.result_expires_s),
        Checkpoints.from_settings(settings, client),
        SessionRegistry(gpu.memory_budget_mb * 2**20),
        default_backend=gpu.backend,
        clickhouse_dsn=settings.clickhouse_dsn,
        progress_interval_s=gpu.progress_interval_s,
    )


class StageTask(Task):  # type: ignore[misc]
    """Refusals end as REJECTED; failures fail the job."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the stage; turn a refusal into REJECTED and a failure into a failed job."""
        job_id = kwargs.get("job_id", "")
        try:
            return super().__call__(*args, **kwargs)
        except StaleOwner as exc:
            logger.warning("refused: %s", exc)
            self.update_state(state="REJECTED", meta={"job_id": job_id, "reason": str(exc)})
            raise Ignore() from exc
        except Exception as exc:
            stages().jobs.fail(job_id, f"{self.name}: {type(exc).__name__}: {exc}")
            stages().registry.drop(job_id)
            raise


STAGE_OPTIONS: dict[str, Any] = {"bind": True, "base": StageTask, "acks_late": True, "reject_on_worker_lost": True}


@shared_task(name=LIFECYCLE_LOAD, **STAGE_OPTIONS)
def load(self: Task, spec: dict[str, Any], *, job_id: str) -> dict[str, Any]:
    """Validate the inputs, claim the job, build the environment, checkpoint the inputs."""
    return stages().load(spec)


@shared_task(name=LIFECYCLE_CREATE, **STAGE_OPTIONS)
def create(self: Task, handoff: dict[str, Any], *, job_id: str) -> dict[str, Any]:
    """Create the population."""
    return stages().create(handoff)


@shared_task(name=LIFECYCLE_EXECUTE, **STAGE_OPTIONS)
def execute(self: Task, handoff: dict[str, Any], *, job_id: str, until: int) -> dict[str, Any]:
    """Run up to day ``until``, reporting PROGRESS."""

    def report(figures: dict[str, Any]) -> None:
        self.update_state(state="PROGRESS", meta=figures)

    return stages().execute(handoff, until, report)


@shared_task(name=LIFECYCLE_EXPORT, **STAGE_OPTIONS)
def export(self: Task, handoff: dict[str, Any], *, job_id: str) -> dict[str, Any]:
    """Write MP2 to the job's sink and finish the job."""
    return stages().export(handoff)
