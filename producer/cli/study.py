"""``simfleet study status ID``: where a DES study published to the fleet stands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from simfleet.producer.fleet.client import Fleet


def register(families: Any) -> None:
    """Add the ``study`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("study", help="DES studies on the fleet")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    status = commands.add_parser("status", help="progress of a study, and its answer once finished")
    status.add_argument("study_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    fleet = Fleet.from_settings()
    try:
        study = fleet.study(args.study_id)
        progress = study.progress()
        state = {
            "study_id": study.id,
            "scenario": study.record["scenario"],
            "replications": progress.total,
            "done": progress.done,
            "failed": progress.failed,
            "running": progress.running,
            "percent": progress.percent,
            "finished": progress.finished,
        }
        if progress.finished:
            state["result"] = study.result(timeout=10)
    finally:
        fleet.close()
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        print()
    else:
        print(
            f"study {state['study_id']} ({state['scenario']}): {state['done']}/{state['replications']} done, "
            f"{state['failed']} failed, {len(state['running'])} running, {state['percent']:.1f}%"
            + (" - finished" if state["finished"] else "")
        )
        if "result" in state:
            from simfleet.producer.report import study_table
            from simfleet.shared.messages import decode
            from simfleet.shared.messages.des import StudyAggregate

            print(study_table(decode(StudyAggregate, state["result"])))
    return 0
