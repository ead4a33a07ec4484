"""What the commands share: flag types that refuse bad values with the flag named, and the Ctrl-C message."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from simfleet.shared.errors import printable

if TYPE_CHECKING:
    from simfleet.producer.fleet.client import Fleet

NO_CONSUMER_AFTER_S = 3.0
"""How soon a command waiting on the fleet says that no worker consumes its queue (it keeps waiting)."""


SEED_MAX = 2**63 - 1
"""The largest study seed: it travels as a signed 64-bit integer (msgspec, Redis, ClickHouse ``Int64``)."""


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {printable(text)!r}") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (argparse names the flag in its error)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer within ``[low, high]``."""

    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


seed_int = bounded_int(0, SEED_MAX)
"""An argparse type: a study seed, ``0`` to ``2**63 - 1``."""


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {printable(text)!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (no NaN, no infinity, no 0)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = _finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def work_id(text: str) -> str:
    """An argparse type: a job or study id a caller chooses (see :func:`simfleet.shared.ids.check_id`)."""
    from simfleet.shared.errors import ConfigError
    from simfleet.shared.ids import check_id

    try:
        return check_id(text, what="id")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


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
