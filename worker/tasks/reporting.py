"""How a running task tells the fleet and its monitors where it stands: Celery's ``PROGRESS`` state, twice over.

Flower builds its task pages from the workers' events, never from the result backend, so a state written with
``update_state`` alone is invisible there: a running stage would show as ``STARTED`` until it ends. A report
therefore goes both ways, in one throttled step (the caller decides how often, at most once per
``progress_interval_s``):

- ``update_state(PROGRESS, meta)``: the typed figures in the result backend, where ``AsyncResult`` and the
  producer's study progress read them;
- a ``task-progress`` event: Celery's event state turns an event ``task-<name>`` into the state ``<NAME>``, so
  Flower shows ``PROGRESS``, with the figures (rounded for reading) as the task's ``result``.

The event carries the worker's own node name (the task's ``hostname``), so Flower's per-worker series gain no label.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from simfleet.shared.messages import to_wire

PROGRESS = "PROGRESS"
PROGRESS_EVENT = "task-progress"
"""The event Flower reads as the state ``PROGRESS`` (``task-<state>``, lower case)."""


def readable(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as they read well on a monitor's page: floats to two decimals, absent figures left out."""
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in figures.items()
            if value is not None}  # fmt: skip


def report_progress(task: Task, progress: Any) -> None:
    """Report ``progress`` (a message struct) as the task's ``PROGRESS`` state, to the backend and to Flower."""
    meta = to_wire(progress)
    task.update_state(state=PROGRESS, meta=meta)
    task.send_event(PROGRESS_EVENT, result=readable(meta))


__all__ = ["PROGRESS", "PROGRESS_EVENT", "readable", "report_progress"]
