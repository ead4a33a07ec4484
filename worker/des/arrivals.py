"""Arrival processes beyond Poisson and deterministic: a rate schedule, a two-state MMPP and a recorded trace.

A request type's ``arrival`` may be a mapping ``{process: schedule | mmpp | trace, ...}`` (``docs/scenarios.md``).
:func:`parse_process` reads it into a :class:`Schedule`, :class:`Mmpp` or :class:`Trace`; ``to_dict`` gives plain
data that :func:`parse_process` reads back to an equal value (a trace always travels inline, as ``times_s``), and
``with_scale`` is how the searches (``des sla``, ``des capacity``) turn a type's load up or down.

:class:`ProcessStream` draws the arrival times of one replication. A schedule and an MMPP are both Poisson processes
whose intensity is constant on pieces of time (a schedule's windows, an MMPP's state sojourns): the next arrival is
where the intensity integrated from the previous one reaches a unit exponential draw. Scaling the rates therefore
changes no draw, only where the same draws land (common random numbers across the probes of a search), and an MMPP's
sojourns come from a generator of their own so that they do not move when the rates do.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from simfleet.shared.errors import ScenarioError
from simfleet.worker.des.limits import (
    MAX_SCHEDULE_WINDOWS,
    MAX_TRACE_BYTES,
    MAX_TRACE_ROWS,
    check_number,
    show,
)
from simfleet.worker.des.streams import BLOCK, generator_state, restore_generator

SECONDS_PER_MIN = 60.0
PROCESSES = ("schedule", "mmpp", "trace")
"""The values of ``process`` in an arrival mapping."""


@dataclass(frozen=True)
class Schedule:
    """A Poisson process whose rate is constant within windows of time.

    Window ``i`` covers ``[starts_s[i], starts_s[i + 1])`` seconds of the run (the last one up to ``repeat_s``, or for
    ever without it) at ``rates_per_min[i] * scale`` requests per minute; with ``repeat_s`` the pattern restarts every
    ``repeat_s`` seconds (a day: 86400).
    """

    starts_s: tuple[float, ...]
    """Window starts in seconds: the first 0, strictly increasing."""
    rates_per_min: tuple[float, ...]
    """Each window's rate in requests per minute, >= 0 (0: no arrivals in that window)."""
    repeat_s: float | None = None
    """The period in seconds, beyond the last start; None: the last window holds for ever."""
    scale: float = 1.0
    """Multiplies every rate."""

    def mean_rate_per_min(self, horizon_s: float) -> float:
        """Requests per minute on average over one period (with ``repeat_s``), else over ``[0, horizon_s]``."""
        span = self.repeat_s if self.repeat_s is not None else horizon_s
        ends = (*self.starts_s[1:], span)
        arrivals = sum(
            rate * max(0.0, min(end, span) - start)
            for start, end, rate in zip(self.starts_s, ends, self.rates_per_min, strict=True)
        )
        return self.scale * arrivals / span

    def with_scale(self, scale: float) -> Schedule:
        """The same schedule with every rate multiplied by ``scale`` instead."""
        return replace(self, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        """The scenario mapping :func:`parse_process` reads back to this schedule."""
        data: dict[str, Any] = {
            "process": "schedule",
            "windows": [
                {"start_s": start, "rate_per_min": rate}
                for start, rate in zip(self.starts_s, self.rates_per_min, strict=True)
            ],
        }
        if self.repeat_s is not None:
            data["repeat_s"] = self.repeat_s
        data["scale"] = self.scale
        return data


@dataclass(frozen=True)
class Mmpp:
    """A two-state Markov-modulated Poisson process: bursts and lulls.

    The process stays in state ``k`` for an exponential time of mean ``mean_sojourn_s[k]``, then switches to the
    other state; while in state ``k`` requests arrive as a Poisson process of ``rates_per_min[k] * scale`` per minute.
    A run starts in the stationary distribution (state ``k`` with probability proportional to its mean sojourn).
    """

    rates_per_min: tuple[float, float]
    """Each state's rate in requests per minute, >= 0, not both 0."""
    mean_sojourn_s: tuple[float, float]
    """Each state's mean stay in seconds, > 0."""
    scale: float = 1.0
    """Multiplies both rates; the sojourns do not change."""

    def mean_rate_per_min(self, horizon_s: float) -> float:
        """The stationary mean rate in requests per minute (``horizon_s`` is not used)."""
        (rate0, rate1), (stay0, stay1) = self.rates_per_min, self.mean_sojourn_s
        return self.scale * (rate0 * stay0 + rate1 * stay1) / (stay0 + stay1)

    def with_scale(self, scale: float) -> Mmpp:
        """The same process with both rates multiplied by ``scale`` instead."""
        return replace(self, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        """The scenario mapping :func:`parse_process` reads back to this process."""
        return {
            "process": "mmpp",
            "rates_per_min": list(self.rates_per_min),
            "mean_sojourn_s": list(self.mean_sojourn_s),
            "scale": self.scale,
        }


@dataclass(frozen=True)
class Trace:
    """Recorded arrival times, replayed as they are: request ``i`` arrives at ``times_s[i] / scale`` seconds."""

    times_s: tuple[float, ...]
    """Arrival times in seconds, sorted, >= 0 (equal times are simultaneous arrivals)."""
    scale: float = 1.0
    """Divides every time: 2 replays the trace twice as fast (twice the rate), over half the time."""

    def mean_rate_per_min(self, horizon_s: float) -> float:
        """Arrivals before ``horizon_s`` (once scaled) per minute of ``[0, horizon_s]``."""
        return self.count_before(horizon_s) / horizon_s * SECONDS_PER_MIN

    def count_before(self, horizon_s: float) -> int:
        """How many scaled times are < ``horizon_s``."""
        return bisect_left(self.scaled_times_s(), horizon_s)

    def scaled_times_s(self) -> list[float]:
        """The arrival times in seconds, divided by ``scale``."""
        scale = self.scale
        return [time / scale for time in self.times_s]

    def with_scale(self, scale: float) -> Trace:
        """The same trace with its times divided by ``scale`` instead."""
        return replace(self, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        """The scenario mapping :func:`parse_process` reads back to this trace (times inline, never a file)."""
        return {"process": "trace", "times_s": list(self.times_s), "scale": self.scale}


ArrivalProcess = Schedule | Mmpp | Trace


def parse_process(spec: Any, *, source: str, key: str, horizon_s: float, base_dir: Path | None) -> ArrivalProcess:
    """Read the mapping under ``request_types.X.arrival`` into an arrival process.

    Args:
        spec: the YAML value: ``{process: schedule | mmpp | trace, ...}``.
        source: the scenario file, for errors.
        key: the dotted path of ``spec`` (``request_types.chat.arrival``), for errors.
        horizon_s: the run's horizon in seconds (a schedule without ``repeat_s`` and a trace need arrivals before it).
        base_dir: the folder a trace's ``file`` is read relative to (the scenario file's); None refuses files.

    Raises:
        ScenarioError: naming ``source`` and the dotted key path of the first problem found (a row of a trace file
            is named by the file and its line instead); a process whose mean rate is 0 is refused.
    """
    if not isinstance(spec, dict):
        raise ScenarioError(f"expected a mapping with 'process', got {show(spec)}", source=source, key=key)
    kind = spec.get("process")
    if kind not in PROCESSES:
        got = "nothing" if kind is None else show(kind)
        message = f"must be one of {', '.join(PROCESSES)}, got {got}"
        raise ScenarioError(message, source=source, key=f"{key}.process")
    allowed = {"process", "scale", *_KEYS[kind]}
    _refuse_unknown(spec, allowed, source, key)
    scale = check_number(spec.get("scale", 1.0), source, f"{key}.scale", positive=True)
    process: ArrivalProcess
    if kind == "schedule":
        process = _parse_schedule(spec, source, key, scale)
    elif kind == "mmpp":
        process = _parse_mmpp(spec, source, key, scale)
    else:
        process = _parse_trace(spec, source, key, scale, base_dir)
    if not process.mean_rate_per_min(horizon_s) > 0:
        where, reason = _why_no_arrivals(process, spec, horizon_s)
        raise ScenarioError(reason, source=source, key=f"{key}.{where}")
    return process


_KEYS = {
    "schedule": ("windows", "repeat_s"),
    "mmpp": ("rates_per_min", "mean_sojourn_s"),
    "trace": ("file", "times_s"),
}


def _refuse_unknown(mapping: dict[Any, Any], allowed: set[str], source: str, key: str) -> None:
    unknown = sorted(name if isinstance(name, str) else show(name) for name in set(mapping) - allowed)
    if unknown:
        message = f"unknown key {show(unknown[0])} (allowed: {', '.join(sorted(allowed))})"
        raise ScenarioError(message, source=source, key=f"{key}.{unknown[0]}")


def _parse_schedule(spec: dict[Any, Any], source: str, key: str, scale: float) -> Schedule:
    windows = spec.get("windows")
    if not isinstance(windows, list) or not windows:
        message = f"expected a non-empty list of {{start_s, rate_per_min}} mappings, got {show(windows)}"
        raise ScenarioError(message, source=source, key=f"{key}.windows")
    if len(windows) > MAX_SCHEDULE_WINDOWS:
        message = f"{len(windows)} windows: at most {MAX_SCHEDULE_WINDOWS}"
        raise ScenarioError(message, source=source, key=f"{key}.windows")
    starts: list[float] = []
    rates: list[float] = []
    for index, window in enumerate(windows):
        here = f"{key}.windows[{index}]"
        if not isinstance(window, dict):
            raise ScenarioError(
                f"expected a {{start_s, rate_per_min}} mapping, got {show(window)}", source=source, key=here
            )
        _refuse_unknown(window, {"start_s", "rate_per_min"}, source, here)
        for name in ("start_s", "rate_per_min"):
            if name not in window:
                raise ScenarioError("is required (a number)", source=source, key=f"{here}.{name}")
        start = check_number(window["start_s"], source, f"{here}.start_s")
        if index == 0 and start != 0:
            raise ScenarioError(
                f"the first window must start at 0, got {start!r}", source=source, key=f"{here}.start_s"
            )
        if index > 0 and start <= starts[-1]:
            message = f"must be after the previous window's start_s ({starts[-1]!r}), got {start!r}"
            raise ScenarioError(message, source=source, key=f"{here}.start_s")
        starts.append(start)
        rates.append(check_number(window["rate_per_min"], source, f"{here}.rate_per_min"))
    repeat_s = None
    if "repeat_s" in spec:
        repeat_s = check_number(spec["repeat_s"], source, f"{key}.repeat_s", positive=True)
        if repeat_s <= starts[-1]:
            message = f"must be beyond the last window's start_s ({starts[-1]!r}), got {repeat_s!r}"
            raise ScenarioError(message, source=source, key=f"{key}.repeat_s")
    return Schedule(tuple(starts), tuple(rates), repeat_s, scale)


def _parse_mmpp(spec: dict[Any, Any], source: str, key: str, scale: float) -> Mmpp:
    rates = _pair(spec, "rates_per_min", source, key, positive=False)
    if rates == (0.0, 0.0):
        raise ScenarioError(
            "both rates are 0: the type would have no arrivals", source=source, key=f"{key}.rates_per_min"
        )
    return Mmpp(rates, _pair(spec, "mean_sojourn_s", source, key, positive=True), scale)


def _pair(spec: dict[Any, Any], name: str, source: str, key: str, *, positive: bool) -> tuple[float, float]:
    """A list of exactly two numbers, one per state."""
    value = spec.get(name)
    if not isinstance(value, list) or len(value) != 2:
        got = f"{len(value)} values" if isinstance(value, list) else show(value)
        raise ScenarioError(
            f"expected a list of 2 numbers (one per state), got {got}", source=source, key=f"{key}.{name}"
        )
    first, second = (
        check_number(item, source, f"{key}.{name}[{i}]", positive=positive) for i, item in enumerate(value)
    )
    return first, second


def _parse_trace(spec: dict[Any, Any], source: str, key: str, scale: float, base_dir: Path | None) -> Trace:
    if "file" in spec and "times_s" in spec:
        raise ScenarioError("give file or times_s, not both", source=source, key=f"{key}.times_s")
    if "times_s" in spec:
        return Trace(_inline_times(spec["times_s"], source, f"{key}.times_s"), scale)
    name = spec.get("file")
    if not isinstance(name, str) or not name:
        message = f"expected the path of a CSV file of arrival times (or times_s: [...]), got {show(name)}"
        raise ScenarioError(message, source=source, key=f"{key}.file")
    if base_dir is None:
        raise ScenarioError(
            "trace files are not read here: give the times inline as times_s: [...]", source=source, key=f"{key}.file"
        )
    return Trace(read_trace(base_dir / name, source=source, key=f"{key}.file"), scale)


def _inline_times(value: Any, source: str, key: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"expected a non-empty list of seconds, got {show(value)}", source=source, key=key)
    if len(value) > MAX_TRACE_ROWS:
        raise ScenarioError(f"{len(value)} times: at most {MAX_TRACE_ROWS}", source=source, key=key)
    times: list[float] = []
    for index, item in enumerate(value):
        time = check_number(item, source, f"{key}[{index}]")
        if times and time < times[-1]:
            message = f"not sorted: {time!r} is before the previous time {times[-1]!r}"
            raise ScenarioError(message, source=source, key=f"{key}[{index}]")
        times.append(time)
    return tuple(times)


def read_trace(path: Path, *, source: str, key: str) -> tuple[float, ...]:
    """The arrival times of a CSV trace file: one column of seconds, sorted, >= 0.

    The first non-blank line may be a header (any text that is not a number); blank lines are skipped.

    Args:
        path: the file.
        source: the scenario file that names it, for an error opening it.
        key: the key path that names it (``request_types.chat.arrival.file``), likewise.

    Raises:
        ScenarioError: a file that cannot be read or is beyond ``MAX_TRACE_BYTES`` (naming ``source`` and ``key``);
            a bad, negative or unsorted time, or more than ``MAX_TRACE_ROWS`` of them (naming the file and the
            1-based line as ``row N``); a file without any time (naming the file).
    """
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            message = f"the trace file {path} has {size} bytes: at most {MAX_TRACE_BYTES}"
            raise ScenarioError(message, source=source, key=key)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(f"cannot read the trace file {path}: {reason}", source=source, key=key) from exc
    file = str(path)
    times: list[float] = []
    first = True
    for row, line in enumerate(text.splitlines(), start=1):
        cell = line.strip()
        if not cell:
            continue
        try:
            value = float(cell)
        except ValueError:
            if first:
                first = False
                continue
            raise ScenarioError(
                f"expected a number of seconds, got {show(cell)}", source=file, key=f"row {row}"
            ) from None
        first = False
        time = check_number(value, file, f"row {row}")
        if times and time < times[-1]:
            message = f"not sorted: {time!r} is before the previous time {times[-1]!r}"
            raise ScenarioError(message, source=file, key=f"row {row}")
        if len(times) == MAX_TRACE_ROWS:
            raise ScenarioError(f"more than {MAX_TRACE_ROWS} arrival times", source=file, key=f"row {row}")
        times.append(time)
    if not times:
        raise ScenarioError("the trace has no arrival times", source=file)
    return tuple(times)


def _why_no_arrivals(process: ArrivalProcess, spec: dict[Any, Any], horizon_s: float) -> tuple[str, str]:
    """The key to blame for a mean rate of 0, and why (an MMPP's rates are checked as they are read)."""
    if isinstance(process, Trace):
        return (
            "times_s" if "times_s" in spec else "file",
            f"no arrival time before horizon_s ({horizon_s!r} s) once divided by scale",
        )
    if isinstance(process, Schedule) and any(process.rates_per_min):
        return "windows", f"every window before horizon_s ({horizon_s!r} s) has rate_per_min 0: no arrivals"
    return (
        "windows" if isinstance(process, Schedule) else "rates_per_min",
        "every rate_per_min is 0: the type would have no arrivals",
    )


class ProcessStream:
    """The arrival times of one request type in one replication, drawn from its process.

    Args:
        process: the arrival process.
        arrivals_rng: the type's arrival generator; unit exponentials are drawn from it in blocks.
        modulation_rng: a generator of the type's own for an MMPP's initial state and sojourns (not used otherwise).
    """

    __slots__ = (
        "arrivals_rng",
        "exponentials",
        "is_trace",
        "modulation_rng",
        "phase",
        "phase_end_s",
        "process",
        "rates_per_s",
        "sojourns",
        "trace_index",
        "trace_times_s",
    )

    def __init__(
        self, process: ArrivalProcess, arrivals_rng: np.random.Generator, modulation_rng: np.random.Generator
    ) -> None:
        self.process = process
        self.arrivals_rng = arrivals_rng
        self.modulation_rng = modulation_rng
        self.exponentials: list[float] = []
        self.sojourns: list[float] = []
        self.phase = 0
        """The MMPP's current state."""
        self.phase_end_s = math.inf
        """When the MMPP leaves its current state (seconds)."""
        self.trace_index = 0
        self.is_trace = isinstance(process, Trace)
        self.trace_times_s: list[float] = []
        self.rates_per_s: tuple[float, ...] = ()
        if isinstance(process, Trace):
            self.trace_times_s = process.scaled_times_s()
        else:
            self.rates_per_s = tuple(rate * process.scale / SECONDS_PER_MIN for rate in process.rates_per_min)
        if isinstance(process, Mmpp):
            stay0, stay1 = process.mean_sojourn_s
            self.phase = 0 if modulation_rng.random() < stay0 / (stay0 + stay1) else 1
            self.phase_end_s = self._sojourn()

    def next_time(self, now: float) -> float:
        """The absolute time (seconds) of the next arrival after ``now`` (the previous arrival, or 0 at the start).

        ``math.inf`` when there is none: a trace is exhausted, or a schedule's last window (without ``repeat_s``)
        has rate 0. A trace hands out its times in order whatever ``now`` is (several may fall at the same time).
        """
        if self.is_trace:
            if self.trace_index == len(self.trace_times_s):
                return math.inf
            self.trace_index += 1
            return self.trace_times_s[self.trace_index - 1]
        if now == math.inf:
            return math.inf
        piece = self._mmpp_piece if isinstance(self.process, Mmpp) else self._schedule_piece
        need = self._exponential()
        time = now
        while True:
            rate_per_s, end_s = piece(time)
            if rate_per_s > 0:
                reach = rate_per_s * (end_s - time)
                if need <= reach:
                    return min(time + need / rate_per_s, end_s)
                need -= reach
            if end_s == math.inf:
                return math.inf
            time = end_s

    def state(self) -> dict[str, Any]:
        """The stream's position as msgpack-safe data, for :meth:`restore`."""
        return {
            "arrivals_rng": generator_state(self.arrivals_rng),
            "modulation_rng": generator_state(self.modulation_rng),
            "exponentials": list(self.exponentials),
            "sojourns": list(self.sojourns),
            "phase": self.phase,
            "phase_end_s": self.phase_end_s,
            "trace_index": self.trace_index,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue exactly where the stream that gave ``state`` was (same process, generators of the same kind)."""
        restore_generator(self.arrivals_rng, state["arrivals_rng"])
        restore_generator(self.modulation_rng, state["modulation_rng"])
        self.exponentials = list(state["exponentials"])
        self.sojourns = list(state["sojourns"])
        self.phase = state["phase"]
        self.phase_end_s = state["phase_end_s"]
        self.trace_index = state["trace_index"]

    def _exponential(self) -> float:
        if not self.exponentials:
            block = self.arrivals_rng.standard_exponential(BLOCK).tolist()
            block.reverse()
            self.exponentials = block
        return self.exponentials.pop()

    def _sojourn(self) -> float:
        """A stay in the current MMPP state, in seconds."""
        if not self.sojourns:
            block = self.modulation_rng.standard_exponential(BLOCK).tolist()
            block.reverse()
            self.sojourns = block
        assert isinstance(self.process, Mmpp)
        return self.sojourns.pop() * self.process.mean_sojourn_s[self.phase]

    def _mmpp_piece(self, time: float) -> tuple[float, float]:
        """The rate (per second) of the state the MMPP is in at ``time``, and when it leaves it (after ``time``)."""
        while self.phase_end_s <= time:
            self.phase = 1 - self.phase
            self.phase_end_s += self._sojourn()
        return self.rates_per_s[self.phase], self.phase_end_s

    def _schedule_piece(self, time: float) -> tuple[float, float]:
        """The rate (per second) of the window holding ``time``, and when it ends (after ``time``)."""
        process = self.process
        assert isinstance(process, Schedule)
        starts, last = process.starts_s, len(process.starts_s) - 1
        period = process.repeat_s
        if period is None:
            index = bisect_right(starts, time) - 1
            return self.rates_per_s[index], starts[index + 1] if index < last else math.inf
        cycle = math.floor(time / period)
        while True:  # the rounding of time / period may leave time just outside the cycle it names
            base = cycle * period
            index = max(0, bisect_right(starts, time - base) - 1)
            while index <= last:
                end = base + (starts[index + 1] if index < last else period)
                if end > time:
                    return self.rates_per_s[index], end
                index += 1
            cycle += 1
