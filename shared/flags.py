"""Flag types for argparse that refuse a bad value with the flag named, never replacing it by a default.

argparse turns an :class:`argparse.ArgumentTypeError` raised here into ``simfleet ...: error: argument --seed: must
be between 0 and 9223372036854775807, got -1`` and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Callable

from simfleet.shared.errors import printable
from simfleet.shared.messages.study import SEED_MAX


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


non_negative_int = bounded_int(0, 2**31 - 1)
"""An argparse type: a count that may be 0."""


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


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number within ``[low, high]``."""

    def parse(text: str) -> float:
        value = _finite(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text}")
        return value

    return parse


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


def date_within(first: dt.date, last: dt.date) -> Callable[[str], dt.date]:
    """An argparse type: a date ``YYYY-MM-DD`` from ``first`` to ``last``."""

    def parse(text: str) -> dt.date:
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {printable(text)!r}") from None
        if not first <= value <= last:
            raise argparse.ArgumentTypeError(f"must be from {first} to {last}, got {value}")
        return value

    return parse
