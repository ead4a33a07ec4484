"""``simfleet lifecycle run``."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add the ``run`` subcommand (not written yet)."""
