"""``simfleet worker --role cpu|gpu``: run a Celery worker of one role in this process (it replaces the command).

- ``cpu``: DES replications from ``des.run``, one pool process per core.
- ``gpu``: lifecycle jobs, one worker per device (``--device I`` sets ``CUDA_VISIBLE_DEVICES``), one pool process
  (concurrency 1) that keeps jobs alive between their stages; it consumes the four stage queues and its own queue
  (``simfleet.worker.<node>``), where the later stages of the jobs it owns are routed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import uuid
from typing import Any, NoReturn

from simfleet.shared.celery_app import stage_queues
from simfleet.shared.jobs import worker_queue
from simfleet.shared.settings import NODE_ENV, ROLE_ENV, load_settings

WORKER_APP = "simfleet.worker.celery_main:app"


def default_concurrency(cores: int | None = None) -> int:
    """One pool process per core; above 2 cores, one core is left to the system."""
    cores = cores or os.cpu_count() or 1
    return cores if cores <= 2 else cores - 1


def register(families: Any) -> None:
    """Add the ``worker`` command."""
    parser: argparse.ArgumentParser = families.add_parser("worker", help="run a fleet worker in this process")
    parser.add_argument(
        "--role", choices=["cpu", "gpu"], required=True, help="cpu: DES replications; gpu: lifecycle job stages"
    )
    parser.add_argument("--device", type=int, default=0, help="gpu role: the device index (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--concurrency", type=int, help=f"cpu role: pool processes (default {default_concurrency()})")
    parser.add_argument("--name", help="unique node name (default <role>[device]-<random>@<host>)")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--logfile", help="log file (default: standard error)")
    parser.set_defaults(handler=_worker)
    watchdog = families.add_parser("watchdog", help="hand the jobs of dead GPU workers to the rest of the fleet")
    watchdog.add_argument("--once", action="store_true", help="one sweep, print what it did, exit")
    watchdog.add_argument("--interval", type=float, help="seconds between sweeps (default gpu_worker's)")
    watchdog.set_defaults(handler=_watchdog)


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
    if args.role == "gpu":
        name = args.name or f"gpu{args.device}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        queues = ",".join([*stage_queues(settings).values(), worker_queue(name)])
        concurrency = 1
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.device)
        max_memory_kb = (settings.gpu_worker.memory_budget_mb * 2 + 1024) * 1024
    else:
        name = args.name or f"cpu-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        queues = settings.queues.des_run
        concurrency = args.concurrency or settings.cpu_worker.concurrency or default_concurrency()
        max_memory_kb = settings.cpu_worker.max_memory_per_replication_mb * 1024
    argv = worker_argv(args.role, name, concurrency, queues, max_memory_kb, args.loglevel)
    if args.logfile:
        argv += ["--logfile", args.logfile]
    os.environ[ROLE_ENV] = args.role
    os.environ[NODE_ENV] = name
    os.environ.update(settings.to_env())
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def _watchdog(args: argparse.Namespace) -> int:
    import json
    import time

    from simfleet.worker.watchdog import Watchdog

    settings = load_settings()
    dog = Watchdog(settings)
    try:
        while True:
            for handover in dog.sweep():
                print(json.dumps(handover.to_dict()), flush=True)
            if args.once:
                return 0
            time.sleep(args.interval or settings.gpu_worker.watchdog_interval_s)
    finally:
        dog.close()
