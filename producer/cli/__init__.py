"""The ``simfleet`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function that adds its parser and sets
``handler`` on it; this module only assembles them and turns :class:`SimfleetError` into a clean exit. The
producer's families are listed here; the operators' commands of the worker side (``worker``, ``watchdog``,
``fleet``) join through the ``simfleet.commands`` entry point group, so this package imports nothing of the
worker side. A Redis outage that escapes a command is one line naming it, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from simfleet.producer.cli import checkpoint, db, des, job, lifecycle, study
from simfleet.shared.errors import SimfleetError
from simfleet.shared.redis_client import UNAVAILABLE, reason_of

COMMANDS_GROUP = "simfleet.commands"


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command family registered."""
    parser = argparse.ArgumentParser(prog="simfleet", description="Simulation-job fleet: DES and lifecycle models.")
    families = parser.add_subparsers(dest="family", required=True, metavar="COMMAND")
    for family in (des, lifecycle, study, job, checkpoint, db):
        family.register(families)
    for plugin in sorted(entry_points(group=COMMANDS_GROUP), key=lambda point: point.name):
        plugin.load()(families)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except SimfleetError as exc:
        print(f"simfleet: error: {exc}", file=sys.stderr)
        return 2
    except UNAVAILABLE as exc:
        print(f"simfleet: error: the fleet's Redis is unreachable: {reason_of(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simfleet: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
