"""The Celery app of the fleet, built from :class:`Settings`: queues, routes, serialisation, reliability.

- Five queues, each with its own direct exchange and a routing key equal to its name; tasks are routed by name.
- msgpack for tasks and results, json also accepted, pickle refused: a worker drops a pickle message unrun.
- Late acknowledgement with a prefetch of 1, and rejection (redelivery) when a pool process dies mid-task: a
  replication is idempotent, so running it again after a crash is always safe.
- The visibility timeout is set in the broker options, the result backend options and the app config; it must be
  longer than the longest task, or Redis would hand a running task to a second worker.
- Task events and sent events on (Flower needs them); results are summaries and references, never bulk arrays.
- Priorities: Redis priority steps 0, 3, 6, 9; ``high`` = 0 is served first (``settings.PRIORITIES``).
- Lifecycle stages after load are routed by :class:`StageRouter` to the queue of the worker that owns the job while
  its heartbeat lives, else to the stage's shared queue (see :mod:`simfleet.shared.jobs`).
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from kombu.entity import Exchange, Queue

from simfleet.shared.jobs import Jobs
from simfleet.shared.settings import Settings

TASK_MODULES = ["simfleet.worker.tasks.des", "simfleet.worker.tasks.lifecycle"]

PRIORITY_STEPS = (0, 3, 6, 9)
"""Redis priority steps; a queue's messages of step ``s > 0`` live in the list ``<queue>:<s>``."""

DES_RUN = "des.run"
DES_AGGREGATE = "des.aggregate"
LIFECYCLE_LOAD = "lifecycle.load"
LIFECYCLE_CREATE = "lifecycle.create"
LIFECYCLE_EXECUTE = "lifecycle.execute"
LIFECYCLE_EXPORT = "lifecycle.export"


def stage_queues(settings: Settings) -> dict[str, str]:
    """The shared queue of each lifecycle stage."""
    queues = settings.queues
    return {
        LIFECYCLE_LOAD: queues.lifecycle_load,
        LIFECYCLE_CREATE: queues.agents_create,
        LIFECYCLE_EXECUTE: queues.run_execute,
        LIFECYCLE_EXPORT: queues.results_export,
    }


def priority_list(queue: str, priority: int | None) -> str:
    """The Redis list kombu keeps ``queue``'s messages of ``priority`` in."""
    step = max(s for s in PRIORITY_STEPS if s <= (priority or 0))
    return f"{queue}:{step}" if step else queue


def _route(queue: str) -> dict[str, str]:
    return {"queue": queue, "exchange": queue, "routing_key": queue}


class StageRouter:
    """Routes a job's create/execute/export to its live owner's own queue, else to the stage's shared queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shared = stage_queues(settings)
        self._jobs: Jobs | None = None

    @property
    def jobs(self) -> Jobs:
        """Job records (connected on first use, in the process that routes)."""
        if self._jobs is None:
            self._jobs = Jobs(redis.Redis.from_url(self.settings.result_backend))
        return self._jobs

    def __call__(self, name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> Any:
        """Celery's router protocol: a route for lifecycle stages, ``None`` for anything else."""
        if name not in self.shared:
            return None
        job_id = (kwargs or {}).get("job_id")
        if name != LIFECYCLE_LOAD and job_id:
            owner_queue = self.jobs.live_queue(job_id)
            if owner_queue:
                return _route(owner_queue)
        return _route(self.shared[name])


def create_app(settings: Settings, *, name: str = "simfleet") -> Celery:
    """A configured Celery app (workers import the task modules listed in ``TASK_MODULES``)."""
    app = Celery(name, broker=settings.broker_url, backend=settings.result_backend, include=TASK_MODULES)
    queues = settings.queues
    transport = {
        "visibility_timeout": settings.visibility_timeout_s,
        "priority_steps": list(PRIORITY_STEPS),
        "sep": ":",
        "queue_order_strategy": "priority",
    }
    app.conf.update(
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in queues.all()],
        task_default_queue=queues.des_run,
        task_default_exchange=queues.des_run,
        task_default_routing_key=queues.des_run,
        task_routes=(
            StageRouter(settings),
            {DES_RUN: _route(queues.des_run), DES_AGGREGATE: _route(queues.des_run)},
        ),
        task_serializer=settings.task_serializer,
        result_serializer=settings.result_serializer,
        accept_content=list(settings.accept_content),
        result_accept_content=list(settings.accept_content),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_acks_on_failure_or_timeout=True,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        visibility_timeout=settings.visibility_timeout_s,
        broker_connection_retry_on_startup=True,
        task_default_priority=3,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        result_expires=settings.result_expires_s,
        result_extended=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app
