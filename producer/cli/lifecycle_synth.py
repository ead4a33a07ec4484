"""``simfleet lifecycle synth``."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add the ``synth`` subcommand (not written yet)."""
