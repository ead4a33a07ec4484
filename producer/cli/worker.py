"""``simfleet worker --role cpu``: run a Celery worker of one role in this process (it replaces the command)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import uuid
from typing import Any, NoReturn

from shared.settings import ROLE_ENV, load_settings

WORKER_APP = "worker.celery_main:app"


def default_concurrency(cores: int | None = None) -> int:
    """One pool process per core; above 2 cores, one core is left to the system."""
    cores = cores or os.cpu_count() or 1
    return cores if cores <= 2 else cores - 1


def register(families: Any) -> None:
    """Add the ``worker`` command."""
    parser: argparse.ArgumentParser = families.add_parser("worker", help="run a fleet worker in this process")
    parser.add_argument("--role", choices=["cpu"], required=True, help="cpu: DES replications (queue des.run)")
    parser.add_argument("--concurrency", type=int, help=f"pool processes (default {default_concurrency()})")
    parser.add_argument("--name", help="unique node name (default cpu-<random>@<host>)")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--logfile", help="log file (default: standard error)")
    parser.set_defaults(handler=_worker)


def worker_argv(role: str, name: str, concurrency: int, queue: str, max_memory_kb: int, loglevel: str) -> list[str]:
    """The ``celery worker`` command line of a worker of ``role``."""
    return [
        sys.executable, "-m", "celery", "-A", WORKER_APP, "worker",
        "--queues", queue, "--concurrency", str(concurrency), "--pool", "prefork", "--hostname", name,
        "--task-events", "--prefetch-multiplier", "1", "--max-memory-per-child", str(max_memory_kb),
        "--loglevel", loglevel,
    ]  # fmt: skip


def _worker(args: argparse.Namespace) -> NoReturn:
    settings = load_settings()
    concurrency = args.concurrency or settings.cpu_worker.concurrency or default_concurrency()
    name = args.name or f"cpu-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = worker_argv(
        args.role,
        name,
        concurrency,
        settings.queues.des_run,
        settings.cpu_worker.max_memory_per_replication_mb * 1024,
        args.loglevel,
    )
    if args.logfile:
        argv += ["--logfile", args.logfile]
    os.environ[ROLE_ENV] = args.role
    os.environ.update(settings.to_env())
    sys.stdout.flush()
    os.execv(sys.executable, argv)
