"""Structured logs: every line names the study or job, the task and the worker.

On a terminal the lines are readable; anywhere else (log files, containers) they are JSON objects, one a line.
``$SIMFLEET_LOG_FORMAT`` (``json`` or ``text``) overrides the choice. Worker processes install this through
Celery's ``setup_logging`` signal, so Celery leaves the root logger to us and every library's records get the
same context.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from typing import IO, Any

from simfleet.shared.settings import LOG_FORMAT_ENV

_HOST = socket.gethostname()


class ContextFilter(logging.Filter):
    """Adds ``study_id``/``job_id``, ``task``, ``task_id`` and ``worker`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the context of the task being run, if any."""
        task_name = task_id = ""
        ids: dict[str, Any] = {}
        worker = os.environ.get("SIMFLEET_NODE", _HOST)
        try:
            from celery import current_task

            task = current_task
            if task and task.request and task.request.id:
                task_name, task_id = task.name or "", task.request.id or ""
                kwargs = task.request.kwargs or {}
                ids = {k: kwargs[k] for k in ("study_id", "job_id") if kwargs.get(k)}
                worker = task.request.hostname or worker
        except Exception:  # pragma: no cover - logging must never fail
            pass
        record.study_id = ids.get("study_id", "")
        record.job_id = ids.get("job_id", "")
        record.task = task_name
        record.task_id = task_id
        record.worker = worker
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "study_id": getattr(record, "study_id", ""),
            "job_id": getattr(record, "job_id", ""),
            "task": getattr(record, "task", ""),
            "task_id": getattr(record, "task_id", ""),
            "worker": getattr(record, "worker", ""),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(worker)s %(task)s %(study_id)s%(job_id)s | %(message)s"


def make_handler(
    stream: IO[str] | None = None, *, logfile: str | None = None, json_lines: bool | None = None
) -> logging.Handler:
    """A handler with the context filter and the right formatter for its destination."""
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
        target_is_tty = False
    else:
        out = stream or sys.stderr
        handler = logging.StreamHandler(out)
        target_is_tty = out.isatty()
    choice = os.environ.get(LOG_FORMAT_ENV)
    if json_lines is None:
        json_lines = choice == "json" if choice in ("json", "text") else not target_is_tty
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(level: str | int = "INFO", *, logfile: str | None = None, json_lines: bool | None = None) -> None:
    """Route every logger through one structured handler."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(make_handler(logfile=logfile, json_lines=json_lines))
    root.setLevel(level)


def install_celery_logging() -> None:
    """Make Celery worker processes log through :func:`configure_logging`."""
    from celery.signals import setup_logging

    @setup_logging.connect(weak=False)
    def _setup(loglevel: Any = "INFO", logfile: str | None = None, **_: Any) -> None:
        configure_logging(loglevel or "INFO", logfile=logfile or None)
