"""The compiled CPU backend: a whole chunk of days is one call of a numba-compiled kernel.

The numpy backend pays some 35-45 us of Python and numpy call overhead per simulated day, whatever the fleet size;
here :func:`.numba_kernels.simulate_days` runs every day of a chunk in machine code, so a small fleet costs a few
nanoseconds per airframe-day instead of tens of microseconds per day, and a large one (100,000 airframes) runs about
four times as fast as numpy's vectorised day. It follows the numpy backend rule for rule, including the choices
where LIFECYCLE_MODEL.md is silent (see :mod:`.numpy_backend`), and gives its MP2 bit for bit; how a day is laid
out is in :mod:`.numba_kernels`.

MP2 rows are written by the kernel into preallocated columns of the schema's dtypes, already in idx order, so
reading a chunk is a few ``repeat``/``tile`` calls for the static columns and nothing per day. The state is held in
idx order with narrow types (status ``uint8``, the rest ``int32``); :meth:`NumbaBackend.state_dict` and
:meth:`~NumbaBackend.load_state_dict` use the numpy backend's format, so either backend can continue the other's run.

Ensembles and maintenance options (docs/lifecycle.md, "Planning") run in the same kernel: a quota group (member x
type) is what a type is in a single run; agents fly their own MP5 column (``Environment.minutes_col``); repair
shops, queues, drawn durations and unplanned removals are laid out in :mod:`.numba_kernels`. Without them, the
kernel takes today's path (no gather, no queue, no draw).

The kernels are compiled on first use and cached on disk (numba's ``cache=True``, under ``__pycache__``): a fresh
process loads them in well under a second; the first compile on a machine takes several seconds. With ``debug`` set,
days run one kernel call each and each day is checked by :func:`.invariants.check_day`, like the numpy backend's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import InvariantError
from simfleet.shared.lifecycle_contract import AIRFRAME_COLUMNS, STATE_FIELDS, TRANSITIONS
from simfleet.worker.lifecycle.backends.base import Columns, LifecycleBackend, check_build
from simfleet.worker.lifecycle.backends.invariants import check_day
from simfleet.worker.lifecycle.backends.mp2_log import AIRFRAME_STATE, DayRecord, agent_columns, daily_columns
from simfleet.worker.lifecycle.backends.numba_kernels import (
    CLASSES,
    STATIC_FIELDS,
    check_before_day_zero,
    simulate_days,
)
from simfleet.worker.lifecycle.backends.numpy_backend import NumpyBackend
from simfleet.worker.lifecycle.environment import NO_DATE, Environment

I64 = npt.NDArray[np.int64]
Arrays = tuple[npt.NDArray[Any], ...]


@dataclass(frozen=True)
class _Chunk:
    """What one kernel call produced: MP2 rows (none without the per-airframe log) and per-group figures."""

    first: int
    rows: Arrays
    granted: I64
    shortfall: I64
    counts: I64
    transitions: I64
    eligible: I64
    queue: I64
    unplanned: I64

    @property
    def days(self) -> int:
        """How many days the chunk holds."""
        return int(self.granted.shape[0])

    def totals(self) -> Arrays:
        """The per-type arrays in the kernel's order."""
        return self.granted, self.shortfall, self.counts, self.transitions, self.eligible, self.queue, self.unplanned


def create(*, debug: bool = False) -> LifecycleBackend:
    """A new numba backend (the registry's factory)."""
    return NumbaBackend(debug=debug)


class NumbaBackend(LifecycleBackend):
    """The lifecycle model compiled with numba, on one CPU core (see the module docstring).

    Args:
        debug: check every invariant of LIFECYCLE_MODEL.md after each day (:mod:`.invariants`).
    """

    name = "numba"
    transitions: I64
    shortfall_days: I64

    def __init__(self, *, debug: bool = False) -> None:
        self.debug = debug
        self._day = 0
        self._chunks: list[_Chunk] = []
        self._spare: dict[int, Arrays] = {}

    @property
    def day(self) -> int:
        """The next day to simulate (days done so far)."""
        return self._day

    def build(self, env: Environment, *, log: str = "full") -> None:
        """Keep the environment's arrays in the kernels' layout (idx order, narrow types)."""
        check_build(env, log)  # the numpy backend's limits: the same fleets run on both
        self.env, self.log = env, log
        self.minutes = np.ascontiguousarray(env.minutes)
        n, groups = env.n, env.n_types
        self._view = _minutes_view(env)
        self.targets = np.ascontiguousarray(env.targets, dtype=np.int64)
        columns: dict[str, I64] = {
            name: env.repair_time - env.assembly_time if name == "repair_minus_assembly" else getattr(env, name)
            for name in STATIC_FIELDS
        }
        narrow = np.uint8 if groups <= 256 else np.int32  # a single run's types in bytes: less to scan
        self.static = tuple(values.astype(narrow if name == "type_code" else np.int32)
                            for name, values in columns.items())  # fmt: skip
        self.ready_range = (int(env.repair_time.min(initial=0)), int(env.repair_time.max(initial=0)))
        self.maintenance = m = env.maintenance
        if m is None:
            none, unsigned = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
            table = np.zeros((0, 1), dtype=np.int64)
            self._options: Arrays = (none, unsigned, none, table, unsigned, unsigned, unsigned)
        else:
            fleet_idx = (np.arange(n) % max(env.airframes, 1)).astype(np.uint64)
            table = np.ascontiguousarray(m.spread_table, dtype=np.int64)
            self._options = (m.slots.astype(np.int64), m.hazard.astype(np.uint64), m.spread_kind.astype(np.int64),
                             table, m.spread_len.astype(np.uint64), m.rng_key.astype(np.uint64), fleet_idx)  # fmt: skip
        self._work: Arrays = (
            np.zeros(-(-n // 8) * 8, dtype=np.uint8),
            *(np.zeros(n, dtype=np.int32) for _ in range(3)),
            np.zeros(1, dtype=np.int64),
        )
        # check_day reads env, acn_internal and blocks (index arrays here: airframes stay in idx order).
        self.acn_internal = env.aircraft_number
        self.blocks = np.split(np.argsort(env.type_code, kind="stable"),
                               np.cumsum(np.bincount(env.type_code, minlength=groups))[:-1])  # fmt: skip
        dtypes = {column.name: column.dtype for column in AIRFRAME_COLUMNS}
        self._airframe_static: dict[str, npt.NDArray[Any]] = {
            "psn": env.psn.astype(np.uint32),
            "aircraft_number": env.aircraft_number.astype(np.uint32),
            "repair_queued": np.zeros(n, dtype=np.uint8),
            **{name: values.astype(dtypes[name]) for name, values in agent_columns(env).items()},
        }

    def create(self) -> None:
        """The population at D0: MP3's state, earlier deliveries done, then the pre-day-0 check."""
        env = self.env
        no_date = np.full(env.n, NO_DATE)
        dates = [no_date] * 3
        self._set_state([env.status, env.sne, env.ppr, env.repair_days, *dates, env.repair_time, no_date], day=0)
        plan = self._plan()  # MP3's repairs are under way, whatever the slots; no one waits
        self._work[4][0] = 0  # the repair list is made from the state after the check
        check_before_day_zero(env.d0, self.minutes[0, env.agent_minutes_col], self.static, self._state, plan,
                              self._work)  # fmt: skip
        self._reset_counters()

    def _set_state(self, values: list[I64], *, day: int) -> None:
        self._state = tuple(
            column.astype(np.uint8 if name == "status" else np.int32)
            for name, column in zip(STATE_FIELDS, values, strict=True)
        )
        self._day = day

    def _plan(self) -> Arrays:
        """The kernels' ``plan``: the options, repairs under way per group, and the queues of the state."""
        groups = self.env.n_types if self.maintenance is not None else 0
        if groups == 0:
            empty = np.zeros(0, dtype=np.int64)
            return (*self._options, empty, np.zeros(0, dtype=np.int32), empty, empty, empty, empty)
        status, queued_since = self._state[0], self._state[8]
        under = np.bincount(self.env.type_code[(status == 4) & (queued_since == NO_DATE)], minlength=groups)
        queues = build_queues(self.env.type_code, np.where(status == 4, queued_since, NO_DATE), groups)
        return (*self._options, under.astype(np.int64), *queues)

    def _reset_counters(self) -> None:
        """Zero counters and no pending MP2; the status tally, repair list and delivery schedule from the state."""
        env = self.env
        self.transitions = np.zeros((len(TRANSITIONS), env.n_types), dtype=np.int64)
        self.shortfall_days = np.zeros(env.n_types, dtype=np.int64)
        self._chunks = []
        status = self._state[0].astype(np.int64)
        cells = np.bincount(status * env.n_types + env.type_code, minlength=7 * env.n_types)
        self._tally = cells.reshape(7, env.n_types).astype(np.int64)
        repairing, sizes = self._work[3], self._work[4]
        in_repair = np.flatnonzero(status == 4)
        if self.maintenance is not None:
            in_repair = in_repair[self._state[8][in_repair] == NO_DATE]
        self._planning = self._plan()
        repairing[: in_repair.size], sizes[0] = in_repair, in_repair.size
        day = env.delivery_day - env.d0
        due = np.flatnonzero((status == 0) & (day >= self._day) & (day < env.days))
        due = due[np.argsort(day[due], kind="stable")]
        self._deliveries = (due.astype(np.int32), np.searchsorted(day[due], np.arange(env.days + 1)).astype(np.int64))

    def step(self, days: int) -> None:
        """Simulate ``days`` more days (stopping at the horizon): one kernel call, or one a day in debug mode."""
        days = max(0, min(days, self.env.days - self._day))
        if days and not self.debug:
            self._run(days, keep_rows=self.log == "full")
        for _ in range(days if self.debug else 0):
            sne, ppr = self._state[1].copy(), self._state[2].copy()
            chunk = self._run(1, keep_rows=True)
            self._check(chunk, sne, ppr)
            if self.log != "full":
                self._chunks[-1] = _Chunk(chunk.first, (), *chunk.totals())

    def _run(self, days: int, *, keep_rows: bool) -> _Chunk:
        n, types, first = self.env.n, self.env.n_types, self._day
        state_rows = [
            np.empty(days * n if keep_rows else 0, dtype=np.int64 if column.dtype == "datetime64[D]" else column.dtype)
            for column in AIRFRAME_COLUMNS
            if column.name in AIRFRAME_STATE
        ]
        queued = np.zeros(days * n if keep_rows and self.maintenance is not None else 0, dtype=np.uint8)
        rows = (*state_rows, queued)
        totals = self._spare.pop(days, None)
        if totals is None:
            shapes = ((types,), (types,), (7, types), (len(TRANSITIONS), types), (CLASSES, types), (types,), (types,))
            totals = tuple(np.zeros((days, *shape), dtype=np.int64) for shape in shapes)
        else:
            for values in totals:
                values.fill(0)
        chunk = _Chunk(first, rows, *totals)
        simulate_days(
            first,
            self.env.d0,
            self.env.airframes,
            self.minutes,
            self._view,
            self.targets,
            self.static,
            self.ready_range,
            self._deliveries,
            self._state,
            self._tally,
            self._work,
            self._planning,
            rows,
            chunk.totals(),
        )
        self._chunks.append(chunk)
        self.transitions += chunk.transitions.sum(axis=0)
        self.shortfall_days += np.count_nonzero(chunk.shortfall > 0, axis=0)
        self._day = first + days
        return chunk

    def _check(self, chunk: _Chunk, sne: npt.NDArray[Any], ppr: npt.NDArray[Any]) -> None:
        """Debug mode: the invariants of one day, by the numpy backend's checks (``sne``, ``ppr``: before it)."""
        s = chunk.first
        record = DayRecord(
            day=s,
            quota=self.env.targets[s + 1].tolist(),
            shortfall=chunk.shortfall[0].tolist(),
            counts=chunk.counts[0],
            transitions=chunk.transitions[0],
            **dict(zip(AIRFRAME_STATE, chunk.rows, strict=False)),
        )
        if self.maintenance is not None:
            record = dataclasses.replace(record, repair_queued=chunk.rows[-1], queue=chunk.queue[0],
                                         unplanned=chunk.unplanned[0])  # fmt: skip
        check_day(cast(NumpyBackend, self), record, sne, ppr, chunk.eligible[0].tolist())

    def read_chunk(self) -> tuple[Columns, Columns]:
        """MP2 of the days stepped since the last read: (per airframe and day, per type and day)."""
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return {}, {}
        first = chunks[0].first
        days = np.arange(first, first + sum(chunk.days for chunk in chunks), dtype=np.int64)
        airframe = self._airframe(chunks, days) if self.log == "full" else {}
        daily = self._daily(chunks, days)
        # daily_columns copied the per-group figures: the next chunk of the same length reuses their arrays (fresh
        # memory costs a page fault per 4 KiB, which an ensemble's per-group figures make felt).
        self._spare = {chunk.days: chunk.totals() for chunk in chunks}
        return airframe, daily

    def _airframe(self, chunks: list[_Chunk], days: I64) -> Columns:
        n = self.env.n
        state = {
            name: chunks[0].rows[k] if len(chunks) == 1 else np.concatenate([chunk.rows[k] for chunk in chunks])
            for k, name in enumerate((*AIRFRAME_STATE, "repair_queued"))
            if chunks[0].rows[k].size or name != "repair_queued"
        }
        out: Columns = {}
        for column in AIRFRAME_COLUMNS:
            if column.name in state:
                values = state[column.name]
            elif column.name == "day":
                values = np.repeat(days.astype(np.uint16), n)
            elif column.name == "date":
                values = np.repeat(days + self.env.d0, n)
            else:
                values = np.tile(self._airframe_static[column.name], len(days))
            out[column.name] = values.view(column.dtype) if column.dtype == "datetime64[D]" else values
        return out

    def _daily(self, chunks: list[_Chunk], days: I64) -> Columns:
        """Per type and day, rows ordered by (day, type), as :class:`~.mp2_log.Mp2Log` lays them out."""

        def joined(name: str) -> I64:
            parts = [getattr(chunk, name) for chunk in chunks]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        counts, transitions = joined("counts"), joined("transitions")
        return daily_columns(self.env, days, joined("granted"), joined("shortfall"), counts, transitions,
                             joined("queue"), joined("unplanned"))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The day, every agent variable (int64, idx order; dates as day numbers, NO_DATE for none), counters."""
        state: dict[str, Any] = {"day": self._day, "backend": self.name}
        for name, values in zip(STATE_FIELDS, self._state, strict=True):
            state[name] = values.astype(np.int64)
        state["transitions"] = self.transitions.copy()
        state["shortfall_days"] = self.shortfall_days.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (after :meth:`build` with the same environment); pending MP2 is dropped."""
        n = self.env.n
        defaults = {"repair_duration": self.env.repair_time, "queued_since": np.full(n, NO_DATE)}
        values = [np.asarray(state[name] if name in state else defaults[name], dtype=np.int64) for name in STATE_FIELDS]
        for name, column in zip(STATE_FIELDS, values, strict=True):
            if column.shape != (n,):
                raise InvariantError(f"state field {name} has shape {column.shape}, expected ({n},)")
        if n and not 0 <= values[0].min() <= values[0].max() <= 6:
            raise InvariantError(f"state field status holds {values[0].min()}..{values[0].max()}, expected 0..6")
        day = int(state["day"])
        if not 0 <= day <= self.env.days:
            raise InvariantError(f"state day {day} is outside the horizon 0..{self.env.days}")
        self._set_state(values, day=day)
        self._reset_counters()
        self.transitions[:] = np.asarray(state.get("transitions", self.transitions), dtype=np.int64)
        self.shortfall_days[:] = np.asarray(state.get("shortfall_days", self.shortfall_days), dtype=np.int64)


def build_queues(group: Any, queued_since: Any, groups: int) -> tuple[Any, ...]:
    """The queue part of ``plan`` from a state: each group's waiting agents by (day joined, agent), in its ring.

    Returns:
        ``queue_store``, ``base``, ``capacity``, ``head`` (all 0), ``length``.
    """
    n = group.shape[0]
    capacity = np.bincount(group, minlength=groups).astype(np.int64)
    base = (np.cumsum(capacity) - capacity).astype(np.int64)
    store = np.zeros(n, dtype=np.int32)
    waiting = np.flatnonzero(queued_since != NO_DATE)
    waiting = waiting[np.lexsort((waiting, queued_since[waiting], group[waiting]))]
    length = np.bincount(group[waiting], minlength=groups).astype(np.int64)
    rank = np.arange(waiting.size) - (np.cumsum(length) - length)[group[waiting]]
    store[base[group[waiting]] + rank] = waiting
    return store, base, np.maximum(capacity, 1), np.zeros(groups, dtype=np.int64), length


def _minutes_view(env: Environment) -> Arrays:
    """The kernels' ``view`` of MP5: no gather, one slice per member, or one column per agent."""
    none = np.zeros(0, dtype=np.int64)
    columns = env.agent_minutes_col.astype(np.int64)
    if env.minutes_col is None or env.n == 0 or np.array_equal(columns, np.arange(env.n)):
        return none, none, np.zeros((2, 0), dtype=np.uint16)
    pair = np.zeros((2, env.n), dtype=np.uint16)
    blocks = columns.reshape(env.members, env.airframes)
    if (blocks == blocks[:, :1] + np.arange(env.airframes)).all():
        return none, blocks[:, 0].copy(), pair
    return columns, none, pair


def warm() -> float:
    """Compile the kernels into numba's on-disk cache (or load them from it); return the seconds it took."""
    import time

    from simfleet.worker.lifecycle.run import run_local
    from simfleet.worker.lifecycle.synth import synthesize

    started = time.perf_counter()
    run_local(synthesize(5, 3, seed=1), backend="numba")
    return time.perf_counter() - started


if __name__ == "__main__":  # `python -m ...numba_backend --warm`: what `make unit` runs before the test processes
    import sys

    if sys.argv[1:] != ["--warm"]:
        sys.exit("usage: python -m simfleet.worker.lifecycle.backends.numba_backend --warm")
    print(f"numba kernels ready in {warm():.1f} s (compiled, or loaded from numba's cache)")
