"""What the commands share: flag types that refuse bad values with the flag named, and the Ctrl-C message."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def work_interrupted(what: str, follow: str, cancel: str) -> None:
    """Tell a person who pressed Ctrl-C while waiting that the work goes on, and how to follow or cancel it."""
    print(f"\nstopped waiting; {what} goes on on the fleet. Follow it with '{follow}', cancel it with '{cancel}'.",
          file=sys.stderr)  # fmt: skip
