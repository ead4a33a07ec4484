"""The Celery app of the fleet, built from :class:`Settings`: queues, routes, serialisation, reliability.

- Five queues, each with its own direct exchange and a routing key equal to its name; tasks are routed by name.
- msgpack for tasks and results, json also accepted, pickle refused: a worker drops a pickle message unrun.
- Late acknowledgement with a prefetch of 1, and rejection (redelivery) when a pool process dies mid-task: a
  replication is idempotent, so running it again after a crash is always safe.
- The visibility timeout is set in the broker options, the result backend options and the app config; it must be
  longer than the longest task, or Redis would hand a running task to a second worker.
- Workers send task events (Flower needs them); no one sends ``task-sent`` events. A sent event names its sender
  by process (``gen<pid>@host``), so every CLI invocation and every recycled pool process that published a task
  would become one more "worker" in Flower and one more ``worker`` label value on its ``/metrics``. Flower sees a
  task from the worker's ``task-received`` on; what waits before that is counted on its broker page.
- Results are summaries and references, never bulk arrays.
- Priorities: Redis priority steps 0, 3, 6, 9; ``high`` = 0 is served first (``settings.PRIORITIES``).
- Lifecycle stages go to their shared queue unless published to a worker's own queue: the owner of a job publishes
  its later stages there itself (see :mod:`simfleet.worker.stages`).
- Results are small and expire (``result_expires_s``); task arguments are not kept with them (``result_extended``
  off), so a large or poisoned message is not stored again as its result.
- Redis outages: the broker connection is retried without end, result-backend writes are retried with backoff
  (``result_backend_always_retry``), and running tasks are not cancelled when the broker connection drops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simfleet.shared.messages import to_wire
from simfleet.shared.messages.lifecycle import StageMessage
from simfleet.shared.settings import PRIORITIES, Settings

if TYPE_CHECKING:
    from celery import Celery

# Celery and kombu are imported where an app is built, so that the queue names and stage_queues cost nothing to a
# command that only reads Redis (``simfleet job status``) or only parses its flags.

TASK_MODULES = ["simfleet.worker.tasks.des", "simfleet.worker.tasks.lifecycle"]

PRIORITY_STEPS = (0, 3, 6, 9)
"""Redis priority steps; a queue's messages of step ``s > 0`` live in the list ``<queue>:<s>``."""

DES_RUN = "des.run"
DES_AGGREGATE = "des.aggregate"
LIFECYCLE_LOAD = "lifecycle.load"
LIFECYCLE_CREATE = "lifecycle.create"
LIFECYCLE_EXECUTE = "lifecycle.execute"
LIFECYCLE_EXPORT = "lifecycle.export"


STAGE_TASKS = {
    "load": LIFECYCLE_LOAD,
    "create": LIFECYCLE_CREATE,
    "execute": LIFECYCLE_EXECUTE,
    "export": LIFECYCLE_EXPORT,
}
"""The task of each lifecycle stage."""


def stage_task_id(message: StageMessage) -> str:
    """The Celery task id of a stage message: one per job, stage and epoch (publishing it again keeps it)."""
    return f"{message.job_id}-{message.seq}-e{message.epoch}"


def publish_stage(app: Celery, message: StageMessage, queue: str, priority: str) -> None:
    """Publish a lifecycle stage message to ``queue`` (a stage's shared queue, or a worker's own queue).

    The exchange and routing key are given with the queue: the stage's route would otherwise send the message to the
    stage's shared exchange, whatever queue is named.
    """
    app.send_task(
        STAGE_TASKS[message.stage],
        args=(to_wire(message),),
        kwargs={"job_id": message.job_id},
        priority=PRIORITIES[priority],
        task_id=stage_task_id(message),
        **_route(queue),
    )


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


def create_app(settings: Settings, *, name: str = "simfleet") -> Celery:
    """A configured Celery app (workers import the task modules listed in ``TASK_MODULES``)."""
    from celery import Celery
    from kombu.entity import Exchange, Queue

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
        task_routes={
            DES_RUN: _route(queues.des_run),
            DES_AGGREGATE: _route(queues.des_run),
            **{name: _route(queue) for name, queue in stage_queues(settings).items()},
        },
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
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        result_backend_always_retry=True,
        result_backend_max_retries=float("inf"),
        result_backend_base_sleep_between_retries_ms=50,
        result_backend_max_sleep_between_retries_ms=2000,
        redis_socket_connect_timeout=3,
        redis_socket_timeout=30,
        redis_retry_on_timeout=True,
        task_default_priority=3,
        task_track_started=True,
        task_send_sent_event=False,
        worker_send_task_events=True,
        result_expires=settings.result_expires_s,
        result_extended=False,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return app
