"""``simfleet job status ID``: where a lifecycle job stands (state, owner, epoch, day, figures, result)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .lifecycle_run import print_summary


def register(families: Any) -> None:
    """Add the ``job`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("job", help="lifecycle jobs on the fleet")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    status = commands.add_parser("status", help="state, owner, epoch, day and figures of a job")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from producer.fleet.client import Fleet

    fleet = Fleet.from_settings()
    try:
        job = fleet.job(args.job_id)
        progress = job.progress()
        record = job.record()
    finally:
        fleet.close()
    state = {
        "job_id": record.job_id,
        "state": record.state,
        "owner": record.owner,
        "epoch": record.epoch,
        "day": record.day,
        "days": progress.days,
        "airframes": record.airframes,
        "percent": progress.percent,
        "progress": progress.figures,
        "error": record.error,
        "result": record.result,
    }
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        print()
        return 0
    owner = f", owner {record.owner}" if record.owner else ""
    print(f"job {record.job_id}: {record.state}, day {record.day}/{progress.days} ({progress.percent:.1f}%), "
          f"epoch {record.epoch}{owner}")  # fmt: skip
    figures = progress.figures
    if figures.get("days_per_s"):
        print(f"last chunk: {figures['days_per_s']:,.0f} days/s, {figures.get('rss_mb', 0):.0f} MiB resident"
              + (f", checkpoint {figures['checkpoint_bytes'] / 2**20:.1f} MiB in {figures['checkpoint_s']:.2f} s"
                 if "checkpoint_bytes" in figures else ""))  # fmt: skip
    if record.error:
        print(f"error: {record.error}")
    if record.result:
        print_summary(record.result)
        print(f"end to end: {record.result['end_to_end_s']:.2f} s")
    return 1 if record.state == "failed" else 0
