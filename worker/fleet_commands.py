"""``simfleet fleet up|down|status``: a local fleet on this machine, and the state of any fleet."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from simfleet.shared.flags import non_negative_int, positive_int
from simfleet.shared.settings import load_settings


def register(families: Any) -> None:
    """Add the ``fleet`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("fleet", help="start, inspect and stop the fleet")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    up = commands.add_parser(
        "up", help="start a local fleet (Redis, CPU and GPU workers, Flower, the exporter) in the background"
    )
    up.add_argument(
        "--cpu-workers", type=non_negative_int, help="CPU worker processes (default: local_fleet.cpu_workers)"
    )
    up.add_argument(
        "--gpu-workers", type=non_negative_int, help="GPU-role worker processes (default: local_fleet.gpu_workers)"
    )
    up.add_argument("--concurrency", type=positive_int, help="pool processes per worker (default: one per core)")
    up.add_argument("--no-flower", action="store_true", help="do not start Flower")
    up.add_argument("--no-exporter", action="store_true", help="do not start the Prometheus exporter")
    up.set_defaults(handler=_up)
    down = commands.add_parser("down", help="stop exactly the processes 'fleet up' started")
    down.set_defaults(handler=_down)
    status = commands.add_parser("status", help="workers, processes, queues, tasks and throughput")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    from simfleet.worker.supervisor import LocalFleet

    settings = load_settings()
    fleet = LocalFleet(settings)
    fleet.up(
        cpu_workers=args.cpu_workers,
        gpu_workers=args.gpu_workers,
        flower=False if args.no_flower else None,
        exporter=False if args.no_exporter else None,
        concurrency=args.concurrency,
    )
    for process in fleet.describe()["processes"]:
        print(f"  {process['name']:<14} pid {process['pid']:<8} log {process['log']}")
    if not args.no_flower and settings.local_fleet.flower:
        print(f"Flower: {fleet.flower_url} (user {settings.flower.user})")
    if not args.no_exporter and settings.local_fleet.exporter:
        print(f"metrics: {fleet.metrics_url} (Prometheus; ops/prometheus/prometheus.yml scrapes it)")
    print(f"passwords: {fleet.secrets_file} (readable only by you) unless your settings give them")
    print("fleet is up; stop it with 'simfleet fleet down'")
    return 0


def _down(args: argparse.Namespace) -> int:
    from simfleet.worker.supervisor import LocalFleet

    stopped = LocalFleet(load_settings()).down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "no local fleet was recorded as up")
    return 0


def _status(args: argparse.Namespace) -> int:
    from simfleet.shared.fleet_status import fleet_status
    from simfleet.worker.supervisor import LocalFleet

    settings = load_settings()
    local = LocalFleet(settings).describe()
    state = fleet_status(settings)
    state["local_fleet"] = local
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        print()
        return 0
    print(f"broker {state['broker']}  (Redis memory {state['redis_used_memory_mb']} MB)")
    print("queues: " + ", ".join(f"{q} {n}" for q, n in state["queues"].items()))
    print(f"workers: {len(state['workers'])}, tasks running {state['running']}, finished {state['finished']}, "
          f"throughput {state['throughput_per_min']:.1f}/min")  # fmt: skip
    for w in state["workers"]:
        print(
            f"  {w['name']}: pid {w['pid']}, pool {w['pool_processes']}, running {w['running']}, "
            f"finished {w['finished']}, up {w['uptime_s']:.0f} s"
        )
    for job in state["lifecycle_jobs"]:
        owner = f"{job['owner']} ({'alive' if job['owner_alive'] else 'SILENT'})" if job["owner"] else "no owner"
        print(f"  job {job['job_id']}: {job['state']}, day {job['day']}/{job['days']}, epoch {job['epoch']}, {owner}")
    if local["processes"]:
        print(f"local fleet processes (logs in {local['log_dir']}):")
        for p in local["processes"]:
            print(f"  {p['name']:<14} pid {p['pid']:<8} {'alive' if p['alive'] else 'DEAD'}  {p['log']}")
        print(f"Flower: {local['flower_url']}")
        print(f"metrics: {local['metrics_url']}")
        print(f"passwords: {local['secrets_file']}")
    return 0
