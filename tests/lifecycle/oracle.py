"""A straightforward per-airframe implementation of LIFECYCLE_MODEL.md: the oracle the vectorised backend must equal.

It reads the inputs directly (not the backend's environment), walks airframes one by one in aircraft-number order
and grants quota with plain counters, following the rules and the documented choices of the numpy backend (a delivery
is decided on the delivery date and takes effect the day after; the pre-day-0 check decides as of D0 - 1; MP2 holds
end-of-day values).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from simfleet.shared.lifecycle_contract import AC_TYPES, AIRFRAME_COLUMNS, DAILY_COLUMNS, TRANSITIONS, LifecycleInputs


def _date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, np.datetime64) and np.isnat(value)):
        return None
    return np.datetime64(value, "D").astype(dt.date)


def oracle_run(inputs: LifecycleInputs, days: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """MP2 per airframe and per type, as typed columns like the backend's."""
    days = inputs.days if days is None else days
    d0 = inputs.version_date
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
                "partout": None,
                "assembly": None,
                "active": None,
            }
        )

    def flight(day: dt.date, plane: dict[str, Any]) -> int:
        return minutes.get((day, plane["acn"]), 0)

    def checks(plane: dict[str, Any], dn: int, decided: dt.date) -> int | None:
        if plane["sne"] + dn > plane["ll"]:
            return 6
        if plane["ppr"] + dn > plane["oh"]:
            if plane["sne"] + dn < plane["br"]:
                plane["repair_days"] = 0
                plane["partout"] = decided + dt.timedelta(days=plane["partout_time"])
                plane["assembly"] = decided + dt.timedelta(days=plane["repair_time"] - plane["assembly_time"])
                return 4
            return 6
        return None

    for plane in planes:
        if plane["status"] == 0 and plane["delivery"] is not None and plane["delivery"] < d0:
            plane.update(status=3, sne=0, ppr=0)
        if plane["status"] == 2:
            decided = checks(plane, flight(d0, plane), d0 - dt.timedelta(days=1))
            if decided is not None:
                plane["status"] = decided

    airframe: dict[str, list[Any]] = {c.name: [] for c in AIRFRAME_COLUMNS}
    daily: dict[str, list[Any]] = {c.name: [] for c in DAILY_COLUMNS}
    for s in range(days):
        today = d0 + dt.timedelta(days=s)
        tomorrow = today + dt.timedelta(days=1)
        start = [p["status"] for p in planes]
        nxt = list(start)
        flown = [0] * len(planes)
        classes: list[list[int]] = [[], [], [], []]
        for i, plane in enumerate(planes):
            st = start[i]
            if st == 0 and plane["delivery"] == today:
                nxt[i] = 3
                plane["sne"] = plane["ppr"] = 0
            elif st == 4:
                plane["repair_days"] += 1
                if plane["repair_days"] >= plane["repair_time"]:
                    nxt[i] = 5
                    plane["ppr"] = 0
                    plane["repair_days"] = 0
            elif st == 2:
                flown[i] = flight(today, plane)
                plane["sne"] += flown[i]
                plane["ppr"] += flown[i]
                decided = checks(plane, flight(tomorrow, plane), today)
                if decided is not None:
                    nxt[i] = decided
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
                "replication": 0,
                "repair_queued": 0,
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
                "replication": 0,
                "repair_queue": 0,
                "unplanned_2_4": 0,
            }
            for key, value in row.items():
                daily[key].append(value)
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
