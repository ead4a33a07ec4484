"""``simfleet study status|list|cancel``: DES studies published to the fleet, from any machine."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from simfleet.producer.cli.options import positive_int, work_id
from simfleet.shared.errors import StudyFailed
from simfleet.shared.messages import to_wire


def register(families: Any) -> None:
    """Add the ``study`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("study", help="DES studies on the fleet")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    status = commands.add_parser("status", help="progress of a study, and its answer once finished")
    status.add_argument("study_id", type=work_id, help="the study's id (printed when it was published)")
    status.add_argument("--json", action="store_true", help="print the state (and the answer once done) as JSON")
    status.set_defaults(handler=_status)
    listing = commands.add_parser("list", help="the newest studies, one line each")
    listing.add_argument("--limit", type=positive_int, default=50, help="how many, newest first (default 50)")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(handler=_list)
    cancel = commands.add_parser("cancel", help="stop a study: replications not started never run")
    cancel.add_argument("study_id", type=work_id, help="the study's id")
    cancel.set_defaults(handler=_cancel)


def _status(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        study = fleet.study(args.study_id)
        progress = study.progress()
        state: dict[str, Any] = {
            "study_id": study.id,
            "scenario": study.record.scenario,
            "state": progress.state,
            "replications": progress.total,
            "done": progress.done,
            "failed": progress.failed,
            "running": to_wire(progress.running),
            "percent": progress.percent,
            "finished": progress.finished,
        }
        answer = None
        if progress.state == "done":
            answer = study.wait(timeout=10)
            state["result"] = to_wire(answer)
        elif progress.finished:
            try:
                study.wait(timeout=10)
            except StudyFailed as exc:
                state["error"] = {"stage": exc.stage, "error_type": exc.error_type, "reason": exc.reason}
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        print()
        return 1 if state["state"] == "failed" or progress.failed else 0
    print(
        f"study {state['study_id']} ({state['scenario']}): {state['state']}, {state['done']}/{state['replications']} "
        f"done, {state['failed']} failed, {len(progress.running)} running, {state['percent']:.1f}%"
    )
    if "error" in state:
        error = state["error"]
        print(f"error: {error['error_type']} in {error['stage'] or '-'}: {error['reason']}")
    if answer is not None:
        from simfleet.producer.report import study_table

        print(study_table(answer))
    return 1 if state["state"] == "failed" or progress.failed else 0


def _list(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        records = fleet.studies(limit=args.limit)
    if args.json:
        json.dump(to_wire(records), sys.stdout, indent=2)
        print()
        return 0
    for record in records:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        print(f"{record.study_id}  {record.state:<9} {record.scenario:<24} {record.replications:>5} replications  "
              f"{created}")  # fmt: skip
    if not records:
        print("no studies recorded")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from simfleet.producer.fleet.client import Fleet

    with Fleet.from_settings() as fleet:
        fleet.study(args.study_id).cancel()
    print(f"study {args.study_id} cancelled: replications not started never run, running ones stop")
    return 0
