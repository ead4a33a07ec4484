"""The Celery app of the fleet, built from :class:`Settings`: queues, routes, serialisation, reliability.

- Five queues, each with its own direct exchange and a routing key equal to its name; tasks are routed by name.
- msgpack for tasks and results, json also accepted, pickle refused: a worker drops a pickle message unrun.
- Late acknowledgement with a prefetch of 1, and rejection (redelivery) when a pool process dies mid-task: a
  replication is idempotent, so running it again after a crash is always safe.
- The visibility timeout is set in the broker options, the result backend options and the app config; it must be
  longer than the longest task, or Redis would hand a running task to a second worker.
- Task events and sent events on (Flower needs them); results are summaries and references, never bulk arrays.
- Priorities: Redis priority steps 0, 3, 6, 9; ``high`` = 0 is served first (see ``shared.settings.PRIORITIES``).
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from .settings import Settings

TASK_MODULES = ["worker.tasks.des"]

DES_RUN = "des.run"
DES_AGGREGATE = "des.aggregate"


def create_app(settings: Settings, *, name: str = "simfleet") -> Celery:
    """A configured Celery app (workers import the task modules listed in ``TASK_MODULES``)."""
    app = Celery(name, broker=settings.broker_url, backend=settings.result_backend, include=TASK_MODULES)
    queues = settings.queues
    transport = {
        "visibility_timeout": settings.visibility_timeout_s,
        "priority_steps": [0, 3, 6, 9],
        "sep": ":",
        "queue_order_strategy": "priority",
    }
    app.conf.update(
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in queues.all()],
        task_default_queue=queues.des_run,
        task_default_exchange=queues.des_run,
        task_default_routing_key=queues.des_run,
        task_routes={
            DES_RUN: {"queue": queues.des_run, "exchange": queues.des_run, "routing_key": queues.des_run},
            DES_AGGREGATE: {"queue": queues.des_run, "exchange": queues.des_run, "routing_key": queues.des_run},
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
