"""What the commands share: flag types that refuse bad values with the flag named, and the Ctrl-C message.

The flag types live in :mod:`simfleet.shared.flags` (the worker side's commands use them too) and are re-exported
here.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from simfleet.shared.flags import (
    bounded_float,
    bounded_int,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
    seed_int,
    work_id,
)
from simfleet.shared.messages.study import SEED_MAX

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet

__all__ = [
    "SEED_MAX",
    "NoConsumerWarning",
    "bounded_float", "bounded_int", "fraction", "non_negative_int", "positive_float", "positive_int",
    "seed_int", "work_id", "work_interrupted",
]  # fmt: skip

NO_CONSUMER_AFTER_S = 3.0
"""How soon a command waiting on the fleet says that no worker consumes its queue (it keeps waiting)."""


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
