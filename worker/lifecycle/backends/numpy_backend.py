"""The vectorised backend: each day is a fixed sequence of array operations over all airframes.

No Python loop runs over airframes. Internally the airframes are held in type-major order (by type, then idx), so
that within a type idx order is aircraft-number order and a per-type running count is one cumulative sum minus the
count before the type's block: that is how quota is granted in priority class and aircraft-number order without a
sort. The code uses only the part of the numpy API that CuPy shares, with the array module as a parameter.

Choices where LIFECYCLE_MODEL.md is silent (also in docs/lifecycle.md):
- A status-0 airframe is in status 3 on its delivery date: the day before, its next status is 3 (sne = ppr = 0).
  One delivered on D0 starts in status 3.
- The pre-day-0 check decides as of D0 - 1: an airframe sent to repair then gets partout and assembly dates from
  D0 - 1. Its status at D0 is the decided one; it is not counted as a transition of any simulated day.
- MP2's sne, ppr and repair_days are end-of-day values; status_id is the status spent on D, next_status the one
  for D+1; dates never set are NULL.
- Status counts and ops_current describe D (start-of-day statuses); granted and shortfall are for D+1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.errors import InvariantError

from ..environment import NO_DATE, Environment
from ..schema import AIRFRAME_COLUMNS, DAILY_COLUMNS, TRANSITIONS
from .base import Columns, LifecycleBackend

STATE_FIELDS = ("status", "sne", "ppr", "repair_days", "partout_date", "assembly_date", "active_date")
ALLOWED = {(0, 3), (1, 2), (2, 3), (2, 4), (2, 6), (3, 2), (4, 5), (5, 2)}


class NumpyBackend(LifecycleBackend):
    """The default backend (numpy on the CPU; CuPy on a GPU with ``xp=cupy``)."""

    name = "numpy"

    def __init__(self, xp: Any = np, *, debug: bool = False) -> None:
        self.xp = xp
        self.debug = debug
        self._day = 0
        self._airframe_chunks: list[dict[str, Any]] = []
        self._airframe_days: list[int] = []
        self._daily_chunks: list[Columns] = []

    @property
    def day(self) -> int:
        """The next day to simulate."""
        return self._day

    # ------------------------------------------------------------------------------------------------ build

    def build(self, env: Environment, *, log: str = "full") -> None:
        """Move the environment into type-major device arrays."""
        xp = self.xp
        if log not in ("full", "aggregates"):
            raise ValueError(f"log must be full or aggregates, got {log!r}")
        self.env = env
        self.log = log
        self.perm = np.argsort(env.type_code, kind="stable")
        self.inverse = np.argsort(self.perm, kind="stable")
        self.n_types = env.n_types
        types = env.type_code[self.perm]
        starts = np.searchsorted(types, np.arange(env.n_types))
        ends = np.searchsorted(types, np.arange(env.n_types), side="right")
        self.type = xp.asarray(types)
        self.block_start, self.block_end = starts, ends
        take = self.perm
        self.ll, self.oh, self.br = (xp.asarray(a[take]) for a in (env.ll, env.oh, env.br))
        self.repair_time = xp.asarray(env.repair_time[take])
        self.partout_time = xp.asarray(env.partout_time[take])
        self.assembly_time = xp.asarray(env.assembly_time[take])
        self.delivery_day = xp.asarray(env.delivery_day[take])
        self.minutes = xp.asarray(env.minutes[:, take])
        self.targets = env.targets
        self.idx = xp.asarray(take.astype(np.int64))

    # ----------------------------------------------------------------------------------------------- create

    def create(self) -> None:
        """The population at D0, after the pre-day-0 check of airframes starting in operation."""
        xp, env = self.xp, self.env
        take = self.perm
        self.status = xp.asarray(env.status[take].copy())
        self.sne = xp.asarray(env.sne[take].copy())
        self.ppr = xp.asarray(env.ppr[take].copy())
        self.repair_days = xp.asarray(env.repair_days[take].copy())
        self.partout_date = xp.full(env.n, NO_DATE, dtype=xp.int64)
        self.assembly_date = xp.full(env.n, NO_DATE, dtype=xp.int64)
        self.active_date = xp.full(env.n, NO_DATE, dtype=xp.int64)
        self._day = 0
        delivered = (self.status == 0) & (self.delivery_day <= env.d0)
        self.status = xp.where(delivered, 3, self.status)
        self.sne = xp.where(delivered, 0, self.sne)
        self.ppr = xp.where(delivered, 0, self.ppr)
        dn = self.minutes[0].astype(xp.int64)
        to4, to6 = self._limits(self.status == 2, dn)
        self._enter_repair(to4, env.d0 - 1)
        self.status = xp.where(to6, 6, xp.where(to4, 4, self.status))

    def _limits(self, flying: Any, dn: Any) -> tuple[Any, Any]:
        """Step 3's checks for tomorrow: (to repair, to storage) among ``flying``."""
        life = flying & (self.sne + dn > self.ll)
        overhaul = flying & ~life & (self.ppr + dn > self.oh)
        to4 = overhaul & (self.sne + dn < self.br)
        return to4, life | (overhaul & ~to4)

    def _enter_repair(self, to4: Any, decided_on: int) -> None:
        xp = self.xp
        self.repair_days = xp.where(to4, 0, self.repair_days)
        self.partout_date = xp.where(to4, decided_on + self.partout_time, self.partout_date)
        self.assembly_date = xp.where(to4, decided_on + self.repair_time - self.assembly_time, self.assembly_date)

    # ------------------------------------------------------------------------------------------------- step

    def step(self, days: int) -> None:
        """Simulate ``days`` more days (stopping at the horizon)."""
        for _ in range(min(days, self.env.days - self._day)):
            self._one_day()

    def _one_day(self) -> None:
        xp, env = self.xp, self.env
        s = self._day
        today = env.d0 + s
        st = self.status
        old_sne, old_ppr = self.sne, self.ppr
        dt = self.minutes[s].astype(xp.int64)
        dn = self.minutes[s + 1].astype(xp.int64)
        nxt = st.copy()

        deliver = (st == 0) & (self.delivery_day == today + 1)
        nxt = xp.where(deliver, 3, nxt)
        sne = xp.where(deliver, 0, self.sne)
        ppr = xp.where(deliver, 0, self.ppr)

        repairing = st == 4
        repair_days = self.repair_days + repairing
        repaired = repairing & (repair_days >= self.repair_time)
        nxt = xp.where(repaired, 5, nxt)
        ppr = xp.where(repaired, 0, ppr)
        self.repair_days = xp.where(repaired, 0, repair_days)

        flying = st == 2
        flight = xp.where(flying, dt, 0)
        self.sne, self.ppr = sne + flight, ppr + flight
        to4, to6 = self._limits(flying, dn)
        nxt = xp.where(to6, 6, xp.where(to4, 4, nxt))
        self._enter_repair(to4, today)

        quota = self.targets[s + 1]
        classes = (flying & ~to4 & ~to6, st == 3, st == 5, (st == 1) & (s + 1 >= self.repair_time))
        granted, remaining, eligible = self._grant(classes, quota)
        nxt = xp.where(granted, 2, xp.where(classes[0], 3, nxt))
        self.active_date = xp.where(granted & (st == 1), today + 1 - self.repair_time, self.active_date)

        if self.debug:
            self._check(s, st, nxt, old_sne, old_ppr, quota, eligible)
        self._record(s, st, nxt, flight, quota, remaining)
        self.status = nxt
        self._day = s + 1

    def _grant(self, classes: tuple[Any, ...], quota: Any) -> tuple[Any, Any, Any]:
        """Grant ``quota`` per type in class order, then ascending idx: (granted mask, unfilled, eligible)."""
        xp = self.xp
        remaining = np.array(quota, dtype=np.int64)
        eligible = np.zeros(self.n_types, dtype=np.int64)
        granted = xp.zeros(self.env.n, dtype=bool)
        before = np.maximum(self.block_start - 1, 0)
        last = np.maximum(self.block_end - 1, 0)
        empty = self.block_end == self.block_start
        for members in classes:
            running = xp.cumsum(members.astype(xp.int64))
            host = np.asarray(running.get() if hasattr(running, "get") else running)
            base = np.where(self.block_start > 0, host[before], 0)
            total = np.where(empty, 0, host[last] - base)
            # Within its type's block, a member's rank is running - base: granted while rank <= remaining.
            granted |= members & (running <= xp.asarray(base + remaining)[self.type])
            eligible += total
            remaining -= np.minimum(total, remaining)
        return granted, remaining, eligible

    # --------------------------------------------------------------------------------------------- output

    def _record(self, s: int, st: Any, nxt: Any, flight: Any, quota: Any, remaining: Any) -> None:
        xp, env = self.xp, self.env
        t = self.n_types
        counts = _host(xp.bincount(st * t + self.type, minlength=7 * t)).reshape(7, t)
        pairs = _host(xp.bincount((st * 7 + nxt) * t + self.type, minlength=49 * t)).reshape(49, t)
        daily: Columns = {
            "day": np.full(t, s),
            "date": np.full(t, env.d0 + s),
            "ac_type": np.arange(t),
            "ops_target": env.targets[s],
            "ops_current": counts[2],
            "granted": np.asarray(quota) - remaining,
            "shortfall": remaining,
        }
        for code in range(7):
            daily[f"count_{code}"] = counts[code]
        for a, b in TRANSITIONS:
            daily[f"trans_{a}_{b}"] = pairs[a * 7 + b]
        self._daily_chunks.append(daily)
        if self.log != "full":
            return
        # Internal-order arrays are kept as they are (each day makes new ones); read_chunk puts them in idx order
        # with one gather per column and chunk rather than one per column and day.
        self._airframe_chunks.append(
            {
                "status_id": st,
                "next_status": nxt,
                "daily_flight": flight,
                "sne": self.sne,
                "ppr": self.ppr,
                "repair_days": self.repair_days,
                "partout_date": self.partout_date,
                "assembly_date": self.assembly_date,
                "active_date": self.active_date,
            }
        )
        self._airframe_days.append(s)

    def read_chunk(self) -> tuple[Columns, Columns]:
        """MP2 of the days stepped since the last read, as typed columns."""
        airframe: Columns = {}
        if self._airframe_chunks:
            env = self.env
            days = np.asarray(self._airframe_days)
            raw: Columns = {}
            for name in self._airframe_chunks[0]:
                stacked = np.stack([_host(chunk[name]) for chunk in self._airframe_chunks])
                raw[name] = stacked[:, self.inverse].ravel()
            raw["day"] = np.repeat(days, env.n)
            raw["idx"] = np.tile(np.arange(env.n), len(days))
            raw["date"] = raw["day"] + env.d0
            raw["psn"] = np.tile(env.psn, len(days))
            raw["aircraft_number"] = np.tile(env.aircraft_number, len(days))
            raw["ac_type"] = np.tile(env.type_code, len(days))
            airframe = _concat([raw], AIRFRAME_COLUMNS)
        daily = _concat(self._daily_chunks, DAILY_COLUMNS) if self._daily_chunks else {}
        self._airframe_chunks, self._daily_chunks, self._airframe_days = [], [], []
        return airframe, daily

    # ---------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Day and agent variables in idx order (numpy arrays), plus the backend name."""
        order = self.inverse
        state: dict[str, Any] = {"day": self._day, "backend": self.name}
        for name in STATE_FIELDS:
            state[name] = _host(getattr(self, name))[order].copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; pending MP2 chunks are dropped (they belong to the saved run)."""
        xp = self.xp
        for name in STATE_FIELDS:
            values = np.asarray(state[name], dtype=np.int64)
            if values.shape != (self.env.n,):
                raise InvariantError(f"state field {name} has shape {values.shape}, expected ({self.env.n},)")
            setattr(self, name, xp.asarray(values[self.perm]))
        self._day = int(state["day"])
        self._airframe_chunks, self._daily_chunks, self._airframe_days = [], [], []

    # --------------------------------------------------------------------------------------------- debug

    def _check(self, s: int, st: Any, nxt: Any, old_sne: Any, old_ppr: Any, quota: Any, eligible: Any) -> None:
        """Every invariant of LIFECYCLE_MODEL.md for day ``s``; raises naming the day, airframe and rule."""
        st_h, nxt_h = _host(st), _host(nxt)
        delivered = (st_h == 0) & (nxt_h == 3)

        def fail(mask: Any, rule: str) -> None:
            where = np.flatnonzero(mask)
            if where.size:
                acn = self.env.aircraft_number[self.perm][where[0]]
                raise InvariantError(f"day {s}: aircraft_number {acn}: {rule} ({where.size} airframe(s))")

        fail((_host(self.sne) < _host(old_sne)) & ~delivered, "sne decreased")
        fail((_host(self.ppr) < _host(old_ppr)) & ~delivered & ~((st_h == 4) & (nxt_h == 5)),
             "ppr decreased other than by the 4->5 reset")  # fmt: skip
        fail((st_h == 6) & (nxt_h != 6), "status 6 is terminal")
        pairs = st_h * 7 + nxt_h
        allowed = np.isin(pairs, [a * 7 + b for a, b in ALLOWED]) | (st_h == nxt_h)
        fail(~allowed, "not a transition of the model")
        operating = np.bincount(self.env.type_code[self.perm][nxt_h == 2], minlength=self.n_types)
        expected = np.minimum(np.asarray(quota), eligible)
        for t in np.flatnonzero(operating != expected):
            raise InvariantError(
                f"day {s}: type {t}: {operating[t]} in operation for D+1, expected min(Q={quota[t]}, "
                f"eligible={eligible[t]}) = {expected[t]}"
            )
        if np.any(operating > np.asarray(quota)):
            raise InvariantError(f"day {s}: granted more than the quota")


def _host(values: Any) -> np.ndarray[Any, Any]:
    return np.asarray(values.get() if hasattr(values, "get") else values)


def _concat(chunks: list[Columns], columns: Any) -> Columns:
    out: Columns = {}
    for column in columns:
        values = np.concatenate([chunk[column.name] for chunk in chunks])
        if column.dtype == "datetime64[D]":
            dates = values.astype("datetime64[D]")
            dates[values == NO_DATE] = np.datetime64("NaT")
            out[column.name] = dates
        else:
            out[column.name] = values.astype(column.dtype)
    return out
