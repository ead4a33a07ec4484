"""The vectorised backend: each day is a fixed sequence of array operations over all airframes.

No Python loop runs over airframes (the only loops are over the two aircraft types and the four priority classes).
Internally airframes are held in type-major order (by type, then idx): inside a type, idx order is aircraft-number
order, so a type is a contiguous block and "the first r requesters of a class by aircraft number" is one cumulative
sum over that class's mask in the block. Quota is granted per type class by class: every class that fits in what is
left is granted whole (a mask, no arithmetic); only the class where the quota runs out, at most one per type and day,
needs the cumulative sum. Per-type counts come from ``count_nonzero`` over a block; the status counts per type are a
host-side tally kept up to date with the day's transitions.

Agent variables use narrow types (status ``uint8``, minutes and days ``int32``, dates as ``int32`` day numbers since
1970-01-01 with :data:`NO_DATE` for "none"); a day's next status is computed with modular ``uint8`` arithmetic over
the masks rather than masked assignments, which vectorise poorly. The code uses only the part of the numpy API that
CuPy shares, with the array module as a parameter (``xp``).

Choices where LIFECYCLE_MODEL.md is silent (also in docs/lifecycle.md):

- Delivery: like every change, it is decided on day D (``D == delivery_date``) and takes effect for D+1. A status-0
  airframe spends its delivery date in status 0 (``next_status`` 3, ``sne = ppr = 0`` at the end of that day) and is
  serviceable from the day after; its first quota request is the day after that. Validated inputs have no delivery
  before D0; one there anyway is taken as already done (status 3 at D0, sne = ppr = 0).
- The pre-day-0 check decides as of D0 - 1: an airframe sent to repair gets partout and assembly dates counted from
  D0 - 1. Its status at D0 is the decided one; it is not a transition of any simulated day. MP4's target for D0 is
  not applied: D0 starts with MP3's airframes in operation (after the check).
- MP2's sne, ppr and repair_days are end-of-day values; status_id is the status spent on D, next_status the one for
  D+1; dates never set are NULL (NaT). Status counts and ops_current describe D; granted and shortfall are for D+1;
  transition counts are those decided on D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simfleet.shared.errors import InvariantError
from simfleet.shared.lifecycle_contract import STATE_FIELDS, TRANSITIONS
from simfleet.worker.lifecycle.backends.base import Columns, LifecycleBackend, check_build
from simfleet.worker.lifecycle.backends.invariants import check_day
from simfleet.worker.lifecycle.backends.mp2_log import DayRecord, Mp2Log
from simfleet.worker.lifecycle.ensemble import KIND_DURATION, KIND_REMOVAL, SPREAD_FACTOR, SPREAD_NONE, draw
from simfleet.worker.lifecycle.environment import NO_DATE, Environment

FEW_GROUPS = 8
"""Up to this many quota groups, per-group counts are one ``count_nonzero`` per block; beyond (an ensemble), one
cumulative sum over all agents."""
MINUTES_WINDOW_DAYS = 64
"""MP5 rows are put in internal order this many days at a time (a full permuted copy would double the memory)."""
FLOWS = np.zeros((7, len(TRANSITIONS)), dtype=np.int64)
"""``FLOWS @ transitions`` is the change of the per-status counts that a day's transition counts make."""
for _kind, (_source, _target) in enumerate(TRANSITIONS):
    FLOWS[_source, _kind], FLOWS[_target, _kind] = -1, 1


class NumpyBackend(LifecycleBackend):
    """The default backend (numpy on the CPU; CuPy on a GPU with ``xp=cupy``).

    Args:
        xp: the array module (numpy, or a module with the same API such as cupy).
        debug: check every invariant of LIFECYCLE_MODEL.md after each day (:mod:`.invariants`).
    """

    name = "numpy"

    def __init__(self, xp: Any = np, *, debug: bool = False) -> None:
        self.xp = xp
        self.debug = debug
        self._day = 0

    @property
    def day(self) -> int:
        """The next day to simulate (days done so far)."""
        return self._day

    def build(self, env: Environment, *, log: str = "full") -> None:
        """Put the static per-airframe arrays in type-major order on the array module's device."""
        check_build(env, log)
        xp = self.xp
        self.env, self.log = env, log
        self.perm = np.argsort(env.type_code, kind="stable")
        self.inverse = np.argsort(self.perm, kind="stable")
        types = env.type_code[self.perm]
        starts = np.searchsorted(types, np.arange(env.n_types))
        ends = np.searchsorted(types, np.arange(env.n_types), side="right")
        self.blocks = [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
        self.acn_internal = env.aircraft_number[self.perm]
        self.bounds = np.concatenate([[0], ends]).astype(np.int64)
        self.minutes_col = env.agent_minutes_col[self.perm]

        def device(values: np.ndarray[Any, Any]) -> Any:
            return xp.asarray(values[self.perm].astype(np.int32))

        self.ll, self.oh, self.br = device(env.ll), device(env.oh), device(env.br)
        self.repair_time, self.partout_time = device(env.repair_time), device(env.partout_time)
        self.repair_minus_assembly = device(env.repair_time - env.assembly_time)
        self.repair_time_range = (int(env.repair_time.min(initial=0)), int(env.repair_time.max(initial=0)))
        self.targets = env.targets.tolist()
        self._window_start, self._window = -1, xp.zeros((0, env.n), dtype=xp.uint16)
        # Deliveries are static: a status-0 airframe leaves 0 only on its delivery date.
        day = env.delivery_day[self.perm] - env.d0
        due = np.flatnonzero((env.status[self.perm] == 0) & (day >= 0) & (day < env.days))
        due = due[np.argsort(day[due], kind="stable")]
        self.delivery_pos = xp.asarray(due)  # on the device: it indexes device arrays
        self.delivery_type = types[due]
        self.delivery_bounds = np.searchsorted(day[due], np.arange(env.days + 1))
        self._build_maintenance(env, types)

    def _build_maintenance(self, env: Environment, groups: np.ndarray[Any, Any]) -> None:
        """Device arrays of the maintenance options (docs/lifecycle.md, "Planning"), per agent in internal order."""
        xp, m = self.xp, env.maintenance
        self.maintenance = m
        if m is None:
            return
        self.group = xp.asarray(groups.astype(np.int64))
        self.slots = m.slots
        self.removals, self.spread = m.removals, m.spread
        self.fleet_idx = xp.asarray((self.perm % max(env.airframes, 1)).astype(np.uint64))
        self.rng_key = xp.asarray(m.rng_key[groups])
        self.hazard = xp.asarray(m.hazard[groups].astype(np.uint64))
        self.spread_kind = xp.asarray(m.spread_kind)
        self.spread_table = xp.asarray(m.spread_table)
        self.spread_len = xp.asarray(m.spread_len.astype(np.uint64))

    def create(self) -> None:
        """The population at D0: MP3's state, earlier deliveries done, then the pre-day-0 check."""
        xp, env = self.xp, self.env
        take = self.perm
        status = env.status[take].copy()
        sne, ppr = env.sne[take].copy(), env.ppr[take].copy()
        delivered = (status == 0) & (env.delivery_day[take] != NO_DATE) & (env.delivery_day[take] < env.d0)
        status[delivered], sne[delivered], ppr[delivered] = 3, 0, 0
        self.status = xp.asarray(status.astype(np.uint8))
        self.sne, self.ppr = xp.asarray(sne.astype(np.int32)), xp.asarray(ppr.astype(np.int32))
        self.repair_days = xp.asarray(env.repair_days[take].astype(np.int32))
        self.partout_date, self.assembly_date, self.active_date, self.queued_since = (
            xp.full(env.n, NO_DATE, dtype=xp.int32) for _ in range(4)
        )
        self.repair_duration = self.repair_time.copy()
        self._day = 0
        dn = self._minutes(0)
        to4, to6 = self._limits(self.status == 2, self.sne + dn, self.ppr + dn)
        if self.maintenance is None:
            self._enter_repair(to4, env.d0 - 1)
        else:
            self._start_repairs(to4, None, self.status == 4, None, -1)
        self.status = self.status + to4.astype(xp.uint8) * xp.uint8(2) + to6.astype(xp.uint8) * xp.uint8(4)
        self._reset_counters()

    def _reset_counters(self) -> None:
        t = self.env.n_types
        self.transitions = np.zeros((8, t), dtype=np.int64)
        self.shortfall_days = np.zeros(t, dtype=np.int64)
        self.shortfall_aircraft_days = np.zeros(t, dtype=np.int64)
        self._recount()
        self._log = Mp2Log(self.env, self.inverse, full=self.log == "full")

    def _recount(self) -> None:
        status = _host(self.status)
        self.tally = np.array([self._per_group(status == c) for c in range(7)], dtype=np.int64).reshape(7, -1)

    def _per_group(self, mask: Any) -> list[int]:
        """How many agents of each group ``mask`` holds."""
        if len(self.blocks) <= FEW_GROUPS:
            return [int(self.xp.count_nonzero(mask[b])) for b in self.blocks]
        running = _host(self.xp.cumsum(mask, dtype=self.xp.int64))
        running = np.concatenate([[0], running])
        return (running[self.bounds[1:]] - running[self.bounds[:-1]]).tolist()  # type: ignore[no-any-return]

    def _minutes(self, s: int) -> Any:
        """MP5 row ``s`` in internal order (as uint16)."""
        if not self._window_start <= s < self._window_start + self._window.shape[0]:
            rows = self.env.minutes[s : s + MINUTES_WINDOW_DAYS]
            self._window = self.xp.asarray(np.take(rows, self.minutes_col, axis=1))
            self._window_start = s
        return self._window[s - self._window_start]

    def _limits(self, flying: Any, sne_tomorrow: Any, ppr_tomorrow: Any) -> tuple[Any, Any]:
        """Step 3's checks for tomorrow among ``flying``: (to repair, to storage)."""
        life = sne_tomorrow > self.ll
        leaving = flying & (life | (ppr_tomorrow > self.oh))
        to4 = leaving & ~life & (sne_tomorrow < self.br)
        return to4, leaving ^ to4

    def _enter_repair(self, to4: Any, decided_on: int) -> None:
        """Repair entry dates; copy-on-write, so MP2 chunks may keep references to earlier days' arrays."""
        xp = self.xp
        self.repair_days = self.repair_days * ~to4
        self.partout_date = self.partout_date.copy()
        xp.copyto(self.partout_date, self.partout_time + decided_on, where=to4)
        self.assembly_date = self.assembly_date.copy()
        xp.copyto(self.assembly_date, self.repair_minus_assembly + decided_on, where=to4)

    def _start_repairs(self, entrants: Any, waiting: Any, under: Any, finishing: Any, s: int) -> None:
        """The repair shop at the end of day ``s`` (``-1``: before day 0): who starts a repair, who waits.

        ``entrants`` are sent to 4 today, ``waiting`` waited at the start of the day (``None``: no one), ``under``
        were under repair at its start and ``finishing`` finish today. Per group, the first ``slots - still under
        repair`` of the waiting and the entrants, by (day joined, aircraft number), start; the other entrants join
        the queue today. Copy-on-write, like :meth:`_enter_repair`.
        """
        xp, env = self.xp, self.env
        decided_on = env.d0 + s
        self.repair_days = self.repair_days * ~entrants
        candidates = entrants if waiting is None else entrants | waiting
        positions = xp.flatnonzero(candidates)
        if positions.size == 0:
            return
        still = under if finishing is None else under & ~finishing
        free = xp.asarray(np.maximum(self.slots - np.asarray(self._per_group(still), dtype=np.int64), 0))
        joined = xp.where(entrants[positions], decided_on, self.queued_since[positions]).astype(xp.int64)
        group = self.group[positions]
        order = xp.argsort(group * (env.days + 2) + (joined - (env.d0 - 1)), kind="stable")
        positions, group = positions[order], group[order]
        rank = xp.arange(positions.size) - xp.searchsorted(group, group, side="left")
        starting, queued = positions[rank < free[group]], positions[rank >= free[group]]
        self.queued_since = self.queued_since.copy()
        self.queued_since[queued] = xp.where(entrants[queued], decided_on, self.queued_since[queued])
        if starting.size == 0:
            return
        duration = self._durations(starting, s)
        self.queued_since[starting] = NO_DATE
        self.repair_duration = self.repair_duration.copy()
        self.repair_duration[starting] = duration
        self.partout_date = self.partout_date.copy()
        self.partout_date[starting] = self.partout_time[starting] + decided_on
        self.assembly_date = self.assembly_date.copy()
        self.assembly_date[starting] = duration - (self.repair_time[starting] - self.repair_minus_assembly[starting]) \
            + decided_on  # fmt: skip

    def _durations(self, agents: Any, s: int) -> Any:
        """The duration of repairs starting on day ``s`` (drawn with day ``s + 1``; MP1's where nothing is drawn)."""
        xp = self.xp
        repair_time = self.repair_time[agents]
        if not self.spread:
            return repair_time
        group = self.group[agents]
        u = draw(self.rng_key[agents], s + 1, self.fleet_idx[agents], KIND_DURATION, xp)
        entry = self.spread_table[group, ((u * self.spread_len[group]) >> xp.uint64(32)).astype(xp.int64)]
        kind = self.spread_kind[group]
        scaled = xp.maximum((repair_time.astype(xp.int64) * entry + 32768) >> 16, 1)
        drawn = xp.where(kind == SPREAD_FACTOR, scaled, entry)
        return xp.where(kind == SPREAD_NONE, repair_time, drawn).astype(xp.int32)

    def step(self, days: int) -> None:
        """Simulate ``days`` more days (stopping at the horizon)."""
        for _ in range(max(0, min(days, self.env.days - self._day))):
            self._one_day()

    def _one_day(self) -> None:
        xp, s = self.xp, self._day
        today = self.env.d0 + s
        st = self.status
        dt, dn = self._minutes(s), self._minutes(s + 1)
        flying, repairing = st == 2, st == 4
        waiting = removed = None
        if self.maintenance is not None:
            waiting = self.queued_since != NO_DATE
            repairing = repairing & ~waiting
        flight = dt * flying
        sne, ppr = self.sne + flight, self.ppr + flight
        repair_days = self.repair_days + repairing
        repaired = repairing & (repair_days >= self.repair_duration)
        ppr *= ~repaired
        repair_days *= ~repaired
        self.repair_days = repair_days
        to4, to6 = self._limits(flying, sne + dn, ppr + dn)
        if self.maintenance is not None and self.removals:
            u = draw(self.rng_key, s, self.fleet_idx, KIND_REMOVAL, xp)
            removed = flying & ~(to4 | to6) & (u < self.hazard)
            to4 = to4 | removed
        classes = (flying & ~(to4 | to6), st == 3, st == 5, self._inactive_ready(st, s))
        quota = self.targets[s + 1]
        granted, per_class, eligible, shortfall = self._grant(classes, quota)

        nxt = st + flying  # every flyer to 3 unless changed below
        nxt += to4
        nxt += to6 * xp.uint8(3)
        nxt += repaired
        nxt += (xp.uint8(2) - nxt) * granted
        lo, hi = int(self.delivery_bounds[s]), int(self.delivery_bounds[s + 1])
        delivering = self.delivery_pos[lo:hi]
        if hi > lo:
            nxt[delivering], sne[delivering], ppr[delivering] = 3, 0, 0

        counts = [self._per_group(m) for m in (to4, to6, repaired)]
        if waiting is not None:
            self._start_repairs(to4, waiting, repairing, repaired, s)
        elif any(counts[0]):
            self._enter_repair(to4, today)
        if any(per_class[3]):
            self.active_date = self.active_date.copy()
            xp.copyto(self.active_date, (today + 1) - self.repair_time, where=granted & (st == 1))
        delivered = np.bincount(self.delivery_type[lo:hi], minlength=self.env.n_types)
        transitions = np.array(
            [
                [e - g for e, g in zip(eligible[0], per_class[0], strict=True)],
                counts[0],
                counts[1],
                per_class[1],
                per_class[2],
                per_class[3],
                counts[2],
                delivered,
            ],
            dtype=np.int64,
        )
        extra: dict[str, Any] = {}
        if waiting is not None:
            extra = {"repair_queued": waiting, "queue": np.asarray(self._per_group(waiting), dtype=np.int64)}
            if removed is not None:
                extra["unplanned"] = np.asarray(self._per_group(removed), dtype=np.int64)
        record = DayRecord(s, st, nxt, flight, sne, ppr, self.repair_days, self.partout_date, self.assembly_date,
                           self.active_date, quota, shortfall, self.tally.copy(), transitions, **extra)  # fmt: skip
        if self.debug:
            check_day(self, record, self.sne, self.ppr, eligible)
        self._log.add(record)
        self.transitions += transitions
        self.shortfall_days += np.asarray(shortfall) > 0
        self.shortfall_aircraft_days += np.asarray(shortfall, dtype=np.int64)
        self.tally += FLOWS @ transitions
        self.status, self.sne, self.ppr = nxt, sne, ppr
        self._day = s + 1

    def _inactive_ready(self, st: Any, s: int) -> Any:
        """Class (d): status 1 with ``s + 1 >= repair_time`` (no per-airframe test when all or none qualify)."""
        low, high = self.repair_time_range
        if s + 1 >= high:
            return st == 1
        if s + 1 < low:
            return self.xp.zeros(st.shape, dtype=bool)
        return (st == 1) & (self.repair_time <= s + 1)

    def _grant(
        self, classes: tuple[Any, ...], quota: list[int]
    ) -> tuple[Any, list[list[int]], list[list[int]], list[int]]:
        """Grant ``quota`` per type in class order, then ascending aircraft number.

        Returns:
            The granted mask, the number granted per class and type, the number eligible per class and type, and
            the unfilled quota per type.
        """
        xp = self.xp
        granted = xp.zeros(self.env.n, dtype=bool)
        eligible = [self._per_group(members) for members in classes]
        per_class = [[0] * len(self.blocks) for _ in classes]
        shortfall = []
        for t, block in enumerate(self.blocks):
            remaining = quota[t]
            for k, members in enumerate(classes):
                take = min(eligible[k][t], remaining)
                if take == 0:
                    continue
                part = members[block]
                if take < eligible[k][t]:
                    part = part & (xp.cumsum(part, dtype=xp.int32) <= take)
                xp.bitwise_or(granted[block], part, out=granted[block])
                per_class[k][t], remaining = take, remaining - take
            shortfall.append(remaining)
        return granted, per_class, eligible, shortfall

    def device_memory_bytes(self) -> int | None:
        """With CuPy, the bytes its memory pool holds; ``None`` on the host."""
        if self.xp is np:
            return None
        return int(self.xp.get_default_memory_pool().used_bytes())

    def read_chunk(self) -> tuple[Columns, Columns]:
        """MP2 of the days stepped since the last read: (per airframe and day, per type and day)."""
        return self._log.take()

    def state_dict(self) -> dict[str, Any]:
        """The day, every agent variable (int64, idx order; dates as day numbers, NO_DATE for none), counters."""
        state: dict[str, Any] = {"day": self._day, "backend": self.name}
        for name in STATE_FIELDS:
            state[name] = _host(getattr(self, name)).astype(np.int64)[self.inverse]
        state["transitions"] = self.transitions.copy()
        state["shortfall_days"] = self.shortfall_days.copy()
        state["shortfall_aircraft_days"] = self.shortfall_aircraft_days.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (after :meth:`build` with the same environment); pending MP2 is dropped."""
        xp, n = self.xp, self.env.n
        dtypes = {"status": np.uint8}
        defaults = {"repair_duration": self.env.repair_time, "queued_since": np.full(n, NO_DATE)}
        for name in STATE_FIELDS:
            values = np.asarray(state[name] if name in state else defaults[name], dtype=np.int64)
            if values.shape != (n,):
                raise InvariantError(f"state field {name} has shape {values.shape}, expected ({n},)")
            setattr(self, name, xp.asarray(values[self.perm].astype(dtypes.get(name, np.int32))))
        self._day = int(state["day"])
        if not 0 <= self._day <= self.env.days:
            raise InvariantError(f"state day {self._day} is outside the horizon 0..{self.env.days}")
        self._reset_counters()
        self.transitions[:] = np.asarray(state.get("transitions", self.transitions), dtype=np.int64)
        self.shortfall_days[:] = np.asarray(state.get("shortfall_days", self.shortfall_days), dtype=np.int64)
        self.shortfall_aircraft_days[:] = np.asarray(state.get("shortfall_aircraft_days", 0), dtype=np.int64)


def _host(values: Any) -> np.ndarray[Any, Any]:
    """A numpy array from a numpy or CuPy one."""
    return np.asarray(values.get() if hasattr(values, "get") else values)
