"""What the commands share: flag types that refuse bad values with the flag named, and the Ctrl-C message."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet

NO_CONSUMER_AFTER_S = 3.0
"""How soon a command waiting on the fleet says that no worker consumes its queue (it keeps waiting)."""


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


class NoConsumerWarning:
    """Says once, a few seconds into a wait that has not started, that no live worker consumes the queue."""

    def __init__(self, fleet: Fleet, queue: str, start_one: str) -> None:
        self.fleet = fleet
        self.queue = queue
        self.start_one = start_one
        self.started = time.monotonic()
        self.done = False

    def check(self, waiting: bool) -> None:
        """Look once the wait is ``NO_CONSUMER_AFTER_S`` old, if nothing has started (``waiting``)."""
        if self.done or not waiting or time.monotonic() - self.started < NO_CONSUMER_AFTER_S:
            return
        self.done = True
        if not self.fleet.consumers(self.queue):
            print(f"\nno worker consumes {self.queue}: the work waits until one starts ({self.start_one})",
                  file=sys.stderr)  # fmt: skip
