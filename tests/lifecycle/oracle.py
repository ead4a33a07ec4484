"""A straightforward per-airframe implementation of LIFECYCLE_MODEL.md: the oracle the vectorised backend must equal.

It reads the inputs directly (not the backend's environment), walks airframes one by one in aircraft-number order
and grants quota with plain counters, following the rules and the documented choices of the numpy backend (a delivery
is decided on the delivery date and takes effect the day after; the pre-day-0 check decides as of D0 - 1; MP2 holds
end-of-day values).

With ``maintenance`` it also follows the planning rules of one ensemble member (docs/lifecycle.md, "Planning"): a
repair shop per type with a number of slots and a first-in first-out queue kept as a plain list, repair durations
drawn per repair, and unplanned removals of flyers. Its random numbers come from the scalar draws of
:mod:`simfleet.worker.lifecycle.ensemble` (``draw_scalar`` on Python integers), not from any backend's code.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from simfleet.shared.lifecycle_contract import AC_TYPES, AIRFRAME_COLUMNS, DAILY_COLUMNS, TRANSITIONS, LifecycleInputs
from simfleet.shared.messages.plan import Empirical, Lognormal, Maintenance
from simfleet.worker.lifecycle.ensemble import (
    KIND_DURATION,
    KIND_REMOVAL,
    SPREAD_DAYS,
    SPREAD_FACTOR,
    SPREAD_NONE,
    draw_scalar,
    lognormal_table,
    replication_key,
    spread_duration,
)


def _date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, np.datetime64) and np.isnat(value)):
        return None
    return np.datetime64(value, "D").astype(dt.date)


class _Shop:
    """One type's maintenance options, as plain numbers.

    Attributes:
        slots: repairs under way at once (``None``: no limit).
        hazard: a flyer is removed when its 32-bit removal draw is below this (``floor(p * 2**32)``).
        kind, table: how durations are drawn: nothing, lognormal multipliers (fixed point) or empirical days.
    """

    def __init__(self, options: Maintenance) -> None:
        self.slots = options.repair_slots
        self.hazard = math.floor(options.removal_hazard * 2**32)
        self.kind, self.table = SPREAD_NONE, []
        if isinstance(options.spread, Lognormal):
            self.kind, self.table = SPREAD_FACTOR, lognormal_table(options.spread.cv)
        elif isinstance(options.spread, Empirical):
            self.kind, self.table = SPREAD_DAYS, list(options.spread.days)


def oracle_run(
    inputs: LifecycleInputs,
    days: int | None = None,
    maintenance: dict[str, Maintenance] | None = None,
    seed: int = 0,
    replication: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """MP2 per airframe and per type, as typed columns like the backend's.

    Args:
        inputs: the fleet (a variant's inputs already applied to the tables).
        days: horizon (default: the inputs' own).
        maintenance: per type name, the planning options (``None`` or a missing type: today's model).
        seed: the ensemble's seed.
        replication: which replication of the ensemble this run is (its draws, and MP2's ``replication``).
    """
    days = inputs.days if days is None else days
    d0 = inputs.version_date
    shops = [_Shop((maintenance or {}).get(t) or Maintenance()) for t in AC_TYPES]
    key = replication_key(seed, replication)
    mp1 = {
        (int(p), str(t)): i for i, (p, t) in enumerate(zip(inputs.mp1["partno"], inputs.mp1["ac_type"], strict=True))
    }
    targets = {
        (_date(d), str(t)): int(q)
        for d, t, q in zip(inputs.mp4["date"], inputs.mp4["ac_type"], inputs.mp4["ops_target"], strict=True)
    }
    minutes = {
        (_date(d), int(a)): int(m)
        for d, a, m in zip(inputs.mp5["date"], inputs.mp5["aircraft_number"], inputs.mp5["daily_minutes"], strict=True)
    }
    planes = []
    for i in np.argsort(np.asarray(inputs.mp3["aircraft_number"]), kind="stable"):
        t = str(inputs.mp3["ac_type"][i])
        row = mp1[(int(inputs.mp3["partno"][i]), t)]

        def pick(name: str, i: int = int(i), row: int = row) -> int:
            own = int(inputs.mp3[name][i])
            return own if own >= 0 else int(inputs.mp1[name][row])

        planes.append(
            {
                "acn": int(inputs.mp3["aircraft_number"][i]),
                "psn": int(inputs.mp3["psn"][i]),
                "type": AC_TYPES.index(t),
                "ll": pick("ll"),
                "oh": pick("oh"),
                "br": pick("br"),
                "repair_time": int(inputs.mp1["repair_time"][row]),
                "partout_time": int(inputs.mp1["partout_time"][row]),
                "assembly_time": int(inputs.mp1["assembly_time"][row]),
                "delivery": _date(inputs.mp3["delivery_date"][i]),
                "status": int(inputs.mp3["status_id"][i]),
                "sne": int(inputs.mp3["sne"][i]),
                "ppr": int(inputs.mp3["ppr"][i]),
                "repair_days": int(inputs.mp3["repair_days"][i]),
                "duration": int(inputs.mp1["repair_time"][row]),  # MP3's repairs run MP1's time, undrawn
                "queued": None,  # the date it joined the repair queue while it waits
                "partout": None,
                "assembly": None,
                "active": None,
            }
        )

    def flight(day: dt.date, plane: dict[str, Any]) -> int:
        return minutes.get((day, plane["acn"]), 0)

    def checks(plane: dict[str, Any], dn: int) -> int | None:
        if plane["sne"] + dn > plane["ll"]:
            return 6
        if plane["ppr"] + dn > plane["oh"]:
            return 4 if plane["sne"] + dn < plane["br"] else 6
        return None

    def repair_shop(entrants: list[int], under: list[int], s: int) -> None:
        """Day ``s`` (``-1``: before D0): who of the queue and of today's ``entrants`` starts a repair, who waits."""
        today = d0 + dt.timedelta(days=s)
        for i in entrants:
            planes[i]["repair_days"] = 0
        for t, shop in enumerate(shops):
            queue = [
                (p["queued"], p["acn"], i) for i, p in enumerate(planes) if p["type"] == t and p["queued"] is not None
            ]
            queue += [(today, planes[i]["acn"], i) for i in entrants if planes[i]["type"] == t]
            queue.sort()
            free = len(queue) if shop.slots is None else max(0, shop.slots - under[t])
            for _joined, _acn, i in queue[:free]:
                plane = planes[i]
                u32 = draw_scalar(key, s + 1, i, KIND_DURATION)  # i is the airframe's idx in its fleet
                duration = spread_duration(plane["repair_time"], shop.kind, shop.table, len(shop.table), u32)
                plane.update(queued=None, duration=duration, repair_days=0)
                plane["partout"] = today + dt.timedelta(days=plane["partout_time"])
                plane["assembly"] = today + dt.timedelta(days=duration - plane["assembly_time"])
            for _joined, _acn, i in queue[free:]:
                if planes[i]["queued"] is None:
                    planes[i]["queued"] = today

    entrants = []
    under = [0] * len(AC_TYPES)
    for i, plane in enumerate(planes):
        if plane["status"] == 0 and plane["delivery"] is not None and plane["delivery"] < d0:
            plane.update(status=3, sne=0, ppr=0)
        if plane["status"] == 4:
            under[plane["type"]] += 1  # MP3's repairs are under way, slots or not
        elif plane["status"] == 2:
            decided = checks(plane, flight(d0, plane))
            if decided is not None:
                plane["status"] = decided
                if decided == 4:
                    entrants.append(i)
    repair_shop(entrants, under, -1)

    airframe: dict[str, list[Any]] = {c.name: [] for c in AIRFRAME_COLUMNS}
    daily: dict[str, list[Any]] = {c.name: [] for c in DAILY_COLUMNS}
    for s in range(days):
        today = d0 + dt.timedelta(days=s)
        tomorrow = today + dt.timedelta(days=1)
        start = [p["status"] for p in planes]
        waiting = [p["queued"] is not None for p in planes]
        nxt = list(start)
        flown = [0] * len(planes)
        classes: list[list[int]] = [[], [], [], []]
        entrants = []
        unplanned = [0] * len(AC_TYPES)
        for i, plane in enumerate(planes):
            st = start[i]
            shop = shops[plane["type"]]
            if st == 0 and plane["delivery"] == today:
                nxt[i] = 3
                plane["sne"] = plane["ppr"] = 0
            elif st == 4 and not waiting[i]:
                plane["repair_days"] += 1
                if plane["repair_days"] >= plane["duration"]:
                    nxt[i] = 5
                    plane["ppr"] = 0
                    plane["repair_days"] = 0
            elif st == 2:
                flown[i] = flight(today, plane)
                plane["sne"] += flown[i]
                plane["ppr"] += flown[i]
                decided = checks(plane, flight(tomorrow, plane))
                if decided is None and shop.hazard > 0 and draw_scalar(key, s, i, KIND_REMOVAL) < shop.hazard:
                    decided = 4
                    unplanned[plane["type"]] += 1
                if decided is not None:
                    nxt[i] = decided
                    if decided == 4:
                        entrants.append(i)
                else:
                    classes[0].append(i)
            elif st == 3:
                classes[1].append(i)
            elif st == 5:
                classes[2].append(i)
            elif st == 1 and s + 1 >= plane["repair_time"]:
                classes[3].append(i)
        granted_by_type = [0] * len(AC_TYPES)
        quota = [targets.get((tomorrow, t), 0) for t in AC_TYPES]
        for members in classes:
            for i in members:  # already in aircraft-number order
                t = planes[i]["type"]
                if granted_by_type[t] < quota[t]:
                    granted_by_type[t] += 1
                    if start[i] == 1:
                        planes[i]["active"] = tomorrow - dt.timedelta(days=planes[i]["repair_time"])
                    nxt[i] = 2
                elif start[i] == 2:
                    nxt[i] = 3
        under = [0] * len(AC_TYPES)
        for i, plane in enumerate(planes):
            if start[i] == 4 and not waiting[i] and nxt[i] == 4:
                under[plane["type"]] += 1
        repair_shop(entrants, under, s)
        for i, plane in enumerate(planes):
            values = {
                "day": s,
                "idx": i,
                "date": today,
                "psn": plane["psn"],
                "aircraft_number": plane["acn"],
                "ac_type": plane["type"],
                "status_id": start[i],
                "next_status": nxt[i],
                "daily_flight": flown[i],
                "sne": plane["sne"],
                "ppr": plane["ppr"],
                "repair_days": plane["repair_days"],
                "partout_date": plane["partout"],
                "assembly_date": plane["assembly"],
                "active_date": plane["active"],
                "variant_id": 0,
                "replication": replication,
                "repair_queued": int(waiting[i]),
            }
            for name, value in values.items():
                airframe[name].append(value)
        for t, name in enumerate(AC_TYPES):
            mine = [i for i, p in enumerate(planes) if p["type"] == t]
            row = {
                "day": s,
                "date": today,
                "ac_type": t,
                "ops_target": targets.get((today, name), 0),
                "ops_current": sum(start[i] == 2 for i in mine),
                "granted": granted_by_type[t],
                "shortfall": quota[t] - granted_by_type[t],
                **{f"count_{c}": sum(start[i] == c for i in mine) for c in range(7)},
                **{f"trans_{a}_{b}": sum(start[i] == a and nxt[i] == b for i in mine) for a, b in TRANSITIONS},
                "variant_id": 0,
                "replication": replication,
                "repair_queue": sum(waiting[i] for i in mine),
                "unplanned_2_4": unplanned[t],
            }
            for key_, value in row.items():
                daily[key_].append(value)
        for i, plane in enumerate(planes):
            plane["status"] = nxt[i]
    return _typed(airframe, AIRFRAME_COLUMNS), _typed(daily, DAILY_COLUMNS)


def _typed(columns: dict[str, list[Any]], specs: Any) -> dict[str, Any]:
    out = {}
    for spec in specs:
        values = columns[spec.name]
        if spec.dtype == "datetime64[D]":
            out[spec.name] = np.array(
                [np.datetime64(v, "D") if v is not None else np.datetime64("NaT") for v in values],
                dtype="datetime64[D]",
            )
        else:
            out[spec.name] = np.array(values, dtype=spec.dtype)
    return out
