"""The limits a DES scenario must stay within, and the number checks that enforce them.

Every number of a scenario is a float64 in the engine. The limits keep every figure the engine derives from them
(work / capacity, rate × work, virtual clocks, horizon × rate) finite and exact enough, and keep a run, or the reading
of a file, within seconds of work for the inputs that are not meant to be simulated at all. They are documented in
``docs/scenarios.md`` (section "Limits"); a value outside them is a :class:`~simfleet.shared.errors.ScenarioError`
naming the file, the key and the limit.
"""

from __future__ import annotations

import math
from typing import Any

from simfleet.shared.errors import ScenarioError, printable
from simfleet.shared.messages.study import SEED_MAX

__all__ = ["SEED_MAX"]  # the wire's limit, re-exported beside the scenario's own

METRICS = ("mean", "p50", "p95", "p99")
"""The latency metrics a study reports and an SLA may name (here, beside the limits, so that the command line's parser
can offer them without importing the scenario parser)."""
FLOOR_METRICS = ("success_ratio",)
"""The SLA metrics that are floors (a term holds while the metric stays at or above its threshold): the per-replication
success ratio, completed / (completed + failed + timed out), a number in [0, 1]."""
SLA_METRICS = METRICS + FLOOR_METRICS
"""Every metric an SLA term may name: the latency ceilings (seconds), then the floors (ratios)."""
MAX_FILE_BYTES = 1 << 20
"""A scenario file is at most 1 MiB (the examples are about 10 KiB)."""
MAX_DEPTH = 32
"""Mappings and lists nest at most 32 deep (a scenario needs 6)."""
MAX_YAML_NODES = 200_000
"""At most this many YAML values once aliases are expanded (refuses "billion laughs" files)."""
MAX_NODES_PER_TYPE = 5_000
"""Nodes in one request type's DAG."""
MAX_EMPIRICAL_VALUES = 100_000
"""Values of one empirical distribution."""
MAX_SCHEDULE_WINDOWS = 100_000
"""Windows of one arrival rate schedule (a day in minutes is 1440)."""
MAX_TRACE_ROWS = 1_000_000
"""Arrival times of one trace (a file's rows, or an inline ``times_s`` list)."""
MAX_TRACE_BYTES = 64 << 20
"""A trace file is at most 64 MiB (a million rows of up to 60 characters or so)."""
MIN_POSITIVE = 1e-9
"""The smallest non-zero quantity (seconds, work units, capacities, rates, weights)."""
MAX_QUANTITY = 1e12
"""The largest quantity (seconds, work units, capacities, rates, weights); quotients and products stay finite."""
MAX_CV = 1_000.0
"""The largest coefficient of variation of a lognormal distribution."""
MAX_COUNT = 1_000_000_000
"""The largest count (``max_in_flight``, ``max_active``)."""
MAX_RETRIES = 1_000
"""The most retries of one node's attempts."""
MAX_PRIORITY = 1_000_000
"""Request type priorities lie within [-MAX_PRIORITY, MAX_PRIORITY]."""
MAX_REPLICATIONS = 10_000
"""The most replications of a study or of an SLA probe."""
DEFAULT_MAX_EVENTS = 200_000_000
"""Events one replication may process before it stops with an error (``max_events``): minutes of a core."""
MAX_EVENTS = 10**12
"""The largest ``max_events`` a scenario may set."""


def check_number(
    value: Any, source: str, key: str, *, positive: bool = False, upper: float = MAX_QUANTITY
) -> float:
    """``value`` as a float: 0 (unless ``positive``) or within [``MIN_POSITIVE``, ``upper``].

    Refuses booleans, text, integers beyond the float range, infinities, NaN, negative numbers, denormal and other
    tiny numbers, and numbers above ``upper``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = ""
        if isinstance(value, str) and _looks_numeric(value):
            hint = " (YAML reads a number without a '.' before its exponent as text: write 1.0e+3, not 1e3)"
        raise ScenarioError(f"expected a finite number, got {show(value)}{hint}", source=source, key=key)
    try:
        number = float(value)
    except OverflowError:
        raise ScenarioError(f"number out of range (at most {upper:g})", source=source, key=key) from None
    if not math.isfinite(number):
        raise ScenarioError(f"expected a finite number, got {number!r}", source=source, key=key)
    if number < 0 or (positive and number == 0):
        raise ScenarioError(f"must be {'> 0' if positive else '>= 0'}, got {number!r}", source=source, key=key)
    if 0 < number < MIN_POSITIVE:
        raise ScenarioError(f"must be 0 or at least {MIN_POSITIVE:g}, got {number!r}", source=source, key=key)
    if number > upper:
        raise ScenarioError(f"must be at most {upper:g}, got {number!r}", source=source, key=key)
    return number


def check_integer(value: Any, source: str, key: str, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """``value`` as an integer within [``minimum``, ``maximum``]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"expected an integer, got {show(value)}", source=source, key=key)
    if value < minimum:
        raise ScenarioError(f"must be >= {minimum}, got {show(value)}", source=source, key=key)
    if value > maximum:
        raise ScenarioError(f"must be at most {maximum}, got {show(value)}", source=source, key=key)
    return value


def show(value: Any) -> str:
    """A short printable form of a YAML value for an error (a huge integer is described, not printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return printable(repr(value))


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
