"""``simfleet lifecycle ...``: synthetic inputs, local runs and fleet jobs of the fleet lifecycle model."""

from __future__ import annotations

import argparse
from typing import Any

from simfleet.producer.cli import lifecycle_plan, lifecycle_run, lifecycle_submit, lifecycle_synth


def register(families: Any) -> None:
    """Add the ``lifecycle`` command family and its subcommands."""
    parser: argparse.ArgumentParser = families.add_parser("lifecycle", help="fleet lifecycle agent model")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    lifecycle_synth.register(commands)
    lifecycle_run.register(commands)
    lifecycle_submit.register(commands)
    lifecycle_plan.register(commands)
