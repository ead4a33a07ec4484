"""The checks every argument of the client API passes before anything is published.

A caller's mistake (a day count of ``0``, a seed of ``2**64``, a priority of ``"asap"``, a job id of ``"../x"``, a
timeout of ``nan``) is a :class:`~simfleet.shared.errors.ConfigError` whose ``key`` is the argument's name and
whose message says what the argument accepts. It is raised before Redis is written or a message is published, so a
bad call leaves nothing behind, and never surfaces as a ``TypeError`` from Python, a ``ValidationError`` from
msgspec or an ``EncodeError`` from kombu. Integers may be Python or numpy integers (they are returned as ``int``,
which every serialiser takes); ``True`` and ``False`` are not integers here.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Collection

from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.ids import check_id


def _shown(value: object) -> str:
    """A refused value, printable and short."""
    return printable(repr(value))


def whole(value: object, *, key: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as an ``int`` within ``[low, high]`` (``high`` None: no upper bound).

    Raises:
        ConfigError: not an integer (a bool, a float, a string...) or out of range; ``key`` names the argument.
    """
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"must be a whole number {span}, got {_shown(value)} ({type(value).__name__})", key=key)
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ConfigError(f"must be a whole number {span}, got {number}", key=key)
    return number


def choice(value: object, *, key: str, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``.

    Raises:
        ConfigError: naming ``key`` and every accepted value.
    """
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"must be one of {', '.join(choices)}, got {_shown(value)}", key=key)
    return value


def flag(value: object, *, key: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (a numpy bool is taken as one).

    Raises:
        ConfigError: anything else (``"no"`` would otherwise be true).
    """
    numpy = sys.modules.get("numpy")  # a numpy bool exists only once numpy is loaded; this module does not load it
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return bool(value)
    raise ConfigError(f"must be True or False, got {_shown(value)} ({type(value).__name__})", key=key)


def seconds(value: object, *, key: str) -> float:
    """A duration: a finite number of seconds above 0.

    Raises:
        ConfigError: a bool, a string, None, NaN, an infinity, zero or a negative number.
    """
    return _seconds(value, key, "a finite number of seconds above 0")


def time_limit(value: object, *, key: str = "timeout") -> float | None:
    """A time limit: a finite number of seconds above 0, or ``None`` for no limit.

    Raises:
        ConfigError: as :func:`seconds`, except that None is taken.
    """
    return None if value is None else _seconds(value, key, "a finite number of seconds above 0 or None (no limit)")


def _seconds(value: object, key: str, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"must be {accepted}, got {_shown(value)} ({type(value).__name__})", key=key)
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"must be {accepted}, got {number}", key=key)
    return number


def work_id(value: object, *, key: str) -> str:
    """A job or study id a caller gives (the rule of :mod:`simfleet.shared.ids`), named ``key`` when refused."""
    return check_id(value, what=key)


def instance(value: object, kinds: tuple[type, ...], *, key: str, accepted: str) -> None:
    """Refuse ``value`` unless it is one of ``kinds``, saying what ``key`` accepts."""
    if not isinstance(value, kinds):
        raise ConfigError(f"must be {accepted}, got {type(value).__name__}", key=key)


__all__ = ["choice", "flag", "instance", "seconds", "time_limit", "whole", "work_id"]
