"""What the fleet adds to Flower's knowledge of its workers (used by :mod:`simfleet.worker.flower_server`).

Flower learns each worker's queues by *inspecting* the workers (a broadcast that only workers alive at that moment
answer) and does so at its start and when someone opens its workers page or asks ``/api/workers?refresh=1``. Its
broker page lists the queues of the workers in that cache, or the app's declared queues when the cache is empty. A
fleet starts Flower beside its workers, and adds workers later (a scale-up, a restart), so the cache missed them:
``/api/workers`` answered ``{}`` and the broker page lacked every owner queue (``simfleet.worker.<node>``, where a
job's later stages wait), whose names no declaration can know in advance.

The hook: when Flower hears a worker it has not inspected (its ``worker-online`` event, or a heartbeat), it inspects
that worker alone, once. Its cache then holds every live worker and its queues, without anyone asking.
"""

from __future__ import annotations

from typing import Any

WORKER_EVENTS = frozenset({"worker-online", "worker-heartbeat"})


def inspect_new_workers(flower: Any) -> None:
    """Make ``flower`` (a ``flower.app.Flower`` not yet started) inspect each worker the first time it hears it."""
    forward = flower.events.on_event  # runs in the events thread; Flower's state is kept in its IO loop

    def on_event(event: dict[str, Any]) -> None:
        forward(event)
        if event.get("type") in WORKER_EVENTS and event.get("hostname"):
            flower.io_loop.add_callback(_inspect_if_new, flower, event["hostname"])

    flower.events.on_event = on_event


def _inspect_if_new(flower: Any, hostname: str) -> None:
    if "active_queues" not in flower.workers.get(hostname, {}):
        flower.update_workers(workername=hostname)  # one in flight per worker (Flower's inspector keeps it so)


__all__ = ["inspect_new_workers"]
