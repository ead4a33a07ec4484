"""The ``simfleet`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function that adds its parser and sets
``handler`` on it; this module only assembles them and turns :class:`SimfleetError` into a clean exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from simfleet.producer.cli import checkpoint, db, des, fleet, job, lifecycle, study, worker
from simfleet.shared.errors import SimfleetError


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command family registered."""
    parser = argparse.ArgumentParser(prog="simfleet", description="Simulation-job fleet: DES and lifecycle models.")
    families = parser.add_subparsers(dest="family", required=True, metavar="COMMAND")
    des.register(families)
    lifecycle.register(families)
    fleet.register(families)
    study.register(families)
    job.register(families)
    checkpoint.register(families)
    worker.register(families)
    db.register(families)
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
    except KeyboardInterrupt:
        print("simfleet: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
