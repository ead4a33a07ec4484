"""``simfleet des ...``: local DES runs, validation, SLA search."""

from __future__ import annotations

import argparse
from typing import Any


def register(families: Any) -> None:
    """Add the ``des`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("des", help="request-latency discrete-event simulator")
    parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
