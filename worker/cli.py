"""The operators' commands, run where workers run: ``simfleet worker``, ``simfleet watchdog``, ``simfleet fleet``.

- ``worker --role cpu``: DES replications from ``des.run``, one pool process per core.
- ``worker --role gpu``: lifecycle jobs, one worker per device (``--device I`` sets ``CUDA_VISIBLE_DEVICES``), one
  pool process (concurrency 1) that keeps jobs alive between their stages; it consumes the four stage queues and its
  own queue (``simfleet.worker.<node>``), where the later stages of the jobs it owns go.
- ``watchdog``: hand the work of silent workers to the rest of the fleet (every worker also runs one).
- ``flower``: Flower for the configured broker, with basic auth on every endpoint (credentials never in argv).
- ``exporter``: the fleet's Prometheus endpoint (:mod:`simfleet.worker.exporter`).
- ``fleet up|down|status``: a local fleet on this machine, and the state of any fleet.

These commands join the ``simfleet`` command line through the ``simfleet.commands`` entry point (the producer's
command line knows nothing of the worker side). A worker checks Redis before it starts: an unreachable server or a
refused password ends it at once with one line, instead of a worker that retries and looks alive.

Registering them imports neither Celery nor the Redis client (``simfleet --help`` stays quick): the handlers import
what they run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import uuid
from typing import Any, NoReturn

from simfleet.shared.flags import bounded_int, positive_float, positive_int
from simfleet.shared.settings import NODE_ENV, ROLE_ENV, load_settings

WORKER_APP = "simfleet.worker.celery_main:app"


def default_concurrency(cores: int | None = None) -> int:
    """One pool process per core; above 2 cores, one core is left to the system."""
    cores = cores or os.cpu_count() or 1
    return cores if cores <= 2 else cores - 1


def node_name(role: str, device: int | None = None, tag: str | None = None) -> str:
    """A unique node name: ``cpu[-tag]-<random>@host`` or ``gpu<device>-<random>@host``."""
    prefix = f"gpu{device or 0}" if role == "gpu" else (f"cpu{tag}" if tag else "cpu")
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"


def register(families: Any) -> None:
    """Add the ``worker``, ``watchdog``, ``flower``, ``exporter`` and ``fleet`` commands."""
    parser: argparse.ArgumentParser = families.add_parser("worker", help="run a fleet worker in this process")
    parser.add_argument(
        "--role", choices=["cpu", "gpu"], required=True, help="cpu: DES replications; gpu: lifecycle job stages"
    )
    parser.add_argument(
        "--device", type=bounded_int(0, 1023), default=0, help="gpu role: the device index (CUDA_VISIBLE_DEVICES)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, help=f"cpu role: pool processes (default {default_concurrency()})"
    )
    parser.add_argument("--name", help="unique node name (default <role>[device]-<random>@<host>)")
    parser.add_argument("--loglevel", default="INFO", help="log level: DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--logfile", help="log file (default: standard error)")
    parser.set_defaults(handler=_worker)
    watchdog = families.add_parser("watchdog", help="hand the work of silent workers to the rest of the fleet")
    watchdog.add_argument("--once", action="store_true", help="one sweep, print what it did, exit")
    watchdog.add_argument("--interval", type=positive_float, help="seconds between sweeps (default gpu_worker's)")
    watchdog.set_defaults(handler=_watchdog)
    flower = families.add_parser(
        "flower",
        help="run Flower for the configured broker, basic auth on every endpoint",
        description="Flower with basic auth on every page and endpoint (/metrics and /healthcheck included). The "
        "credentials come from FLOWER_BASIC_AUTH=user:password, the settings (flower.user, flower.password) or the "
        "local fleet's secrets file; never from the command line.",
    )
    flower.set_defaults(handler=_flower)
    exporter = families.add_parser(
        "exporter", help="serve the fleet's Prometheus metrics (/metrics, /healthz), read from Redis at each scrape"
    )
    exporter.add_argument("--host", help="address to listen on (default metrics.host, 127.0.0.1)")
    exporter.add_argument("--port", type=bounded_int(0, 65535), help="port to listen on (default metrics.port, 9810; "
                          "0 picks a free one)")  # fmt: skip
    exporter.set_defaults(handler=_exporter)
    from simfleet.worker import fleet_commands

    fleet_commands.register(families)


def worker_argv(name: str, concurrency: int, queues: str, max_memory_kb: int, loglevel: str) -> list[str]:
    """The ``celery worker`` command line of one worker.

    Without mingle and gossip: the fleet keeps its state in Redis records (cancellations included), so a worker
    need not sync revoked ids with its neighbours at start (a second lost per start) or chatter with them.
    """
    return [
        sys.executable, "-m", "celery", "-A", WORKER_APP, "worker",
        "--queues", queues, "--concurrency", str(concurrency), "--pool", "prefork", "--hostname", name,
        "--task-events", "--prefetch-multiplier", "1", "--max-memory-per-child", str(max_memory_kb),
        "--without-mingle", "--without-gossip", "--loglevel", loglevel,
    ]  # fmt: skip


def _worker(args: argparse.Namespace) -> NoReturn:
    from simfleet.shared.celery_app import stage_queues
    from simfleet.shared.jobs import worker_queue
    from simfleet.shared.redis_client import check_reachable

    settings = load_settings()
    for url in dict.fromkeys((settings.broker_url, settings.result_backend)):
        check_reachable(url)
    if args.role == "gpu":
        name = args.name or node_name("gpu", args.device)
        queues = ",".join([*stage_queues(settings).values(), worker_queue(name)])
        concurrency = 1
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.device)
        max_memory_kb = (settings.gpu_worker.memory_budget_mb * 2 + 1024) * 1024
    else:
        name = args.name or node_name("cpu")
        queues = settings.queues.des_run
        concurrency = args.concurrency or settings.cpu_worker.concurrency or default_concurrency()
        max_memory_kb = settings.cpu_worker.max_memory_per_replication_mb * 1024
    argv = worker_argv(name, concurrency, queues, max_memory_kb, args.loglevel)
    if args.logfile:
        argv += ["--logfile", args.logfile]
    os.environ[ROLE_ENV] = args.role
    os.environ[NODE_ENV] = name
    os.environ.update(settings.to_env())
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def _flower(args: argparse.Namespace) -> int:
    from simfleet.shared.redis_client import check_reachable
    from simfleet.worker.flower_server import credentials, serve

    settings = load_settings()
    credentials(settings)  # refuse before anything starts when no password is configured
    check_reachable(settings.broker_url)
    return serve(settings)


def _watchdog(args: argparse.Namespace) -> int:
    from simfleet.shared.redis_client import check_reachable
    from simfleet.worker.watchdog import Watchdog

    settings = load_settings()
    check_reachable(settings.result_backend)
    dog = Watchdog(settings, grace_s=0.0 if args.once else None)
    try:
        while True:
            for handover in dog.sweep():
                print(json.dumps(handover.to_dict()), flush=True)
            if args.once:
                return 0
            time.sleep(args.interval or settings.gpu_worker.watchdog_interval_s)
    finally:
        dog.close()


def _exporter(args: argparse.Namespace) -> int:
    from simfleet.shared.errors import FleetUnavailable
    from simfleet.shared.redis_client import check_reachable
    from simfleet.worker.exporter import serve

    settings = load_settings()
    try:
        check_reachable(settings.result_backend)
    except FleetUnavailable as exc:  # served anyway: simfleet_redis_up says 0 until Redis answers
        print(f"simfleet: warning: {exc}; serving anyway (simfleet_redis_up is 0 until it answers)", file=sys.stderr)
    origin = ("--host" if args.host else "metrics.host", "metrics.port" if args.port is None else "--port")
    serve(settings, args.host or settings.metrics.host, settings.metrics.port if args.port is None else args.port,
          origin)  # fmt: skip
    return 0
