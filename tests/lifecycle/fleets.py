"""Small hand-made and random fleets, built directly as LifecycleInputs (no files, no validation)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from simfleet.shared.lifecycle_contract import LifecycleInputs

D0 = dt.date(2025, 1, 1)


def make_inputs(
    planes: list[dict[str, Any]],
    days: int,
    *,
    targets: dict[str, list[int]] | None = None,
    minutes: dict[int, list[int | None]] | None = None,
    repair_time: int = 3,
    partout_time: int = 1,
    assembly_time: int = 1,
    mp1_limits: tuple[int, int, int] = (10_000, 1_000, 8_000),
) -> LifecycleInputs:
    """Airframes from dicts (aircraft_number, status, ac_type, sne, ppr, ...); one MP1 row per type.

    ``targets[type]`` gives ops_target for days 0..days (default: 1 every day); ``minutes[aircraft_number]`` the
    flight per day 0..days (default 100 every day; ``None`` = no MP5 row, which means 0).
    """
    ll, oh, br = mp1_limits
    mp1 = {
        "partno": np.array([1, 2]),
        "ac_type": np.array(["mi8", "mi17"]),
        "ll": np.array([ll, ll]),
        "oh": np.array([oh, oh]),
        "br": np.array([br, br]),
        "repair_time": np.array([repair_time, repair_time]),
        "partout_time": np.array([partout_time, partout_time]),
        "assembly_time": np.array([assembly_time, assembly_time]),
    }
    n = len(planes)

    def col(name: str, default: Any) -> np.ndarray:
        return np.array([p.get(name, default) for p in planes])

    types = col("ac_type", "mi8")
    mp3 = {
        "psn": np.array([p.get("psn", 1000 + i) for i, p in enumerate(planes)]),
        "aircraft_number": col("aircraft_number", 0),
        "partno": np.where(types == "mi8", 1, 2),
        "ac_type": types,
        "status_id": col("status", 2),
        "sne": col("sne", 0),
        "ppr": col("ppr", 0),
        "repair_days": col("repair_days", 0),
        "ll": col("ll", -1),
        "oh": col("oh", -1),
        "br": col("br", -1),
        "mfg_date": np.full(n, np.datetime64("2000-01-01")),
        "delivery_date": np.array(
            [np.datetime64(p["delivery"], "D") if p.get("delivery") else np.datetime64("NaT") for p in planes],
            dtype="datetime64[D]",
        ),
    }
    dates = np.array([np.datetime64(D0) + s for s in range(days + 1)], dtype="datetime64[D]")
    targets = targets or {}
    mp4_rows = [(d, t, (targets.get(t) or [1] * (days + 1))[s]) for s, d in enumerate(dates) for t in ("mi8", "mi17")]
    mp4 = {
        "date": np.array([r[0] for r in mp4_rows], dtype="datetime64[D]"),
        "ac_type": np.array([r[1] for r in mp4_rows]),
        "ops_target": np.array([r[2] for r in mp4_rows]),
    }
    minutes = minutes or {}
    mp5_rows = []
    for p in planes:
        flights = minutes.get(p["aircraft_number"], [100] * (days + 1))
        for s, m in enumerate(flights):
            if m is not None:
                mp5_rows.append((dates[s], p["aircraft_number"], m))
    mp5 = {
        "date": np.array([r[0] for r in mp5_rows], dtype="datetime64[D]"),
        "aircraft_number": np.array([r[1] for r in mp5_rows], dtype=np.int64),
        "daily_minutes": np.array([r[2] for r in mp5_rows], dtype=np.int64),
    }
    return LifecycleInputs(D0, days, mp1, mp3, mp4, mp5)


def random_inputs(rng: np.random.Generator, n: int, days: int) -> LifecycleInputs:
    """A random small fleet with edge cases: br = 0, zero quota, quota above the fleet, dn = 0, deliveries."""
    oh = int(rng.integers(100, 600))
    br = int(rng.choice([0, oh + int(rng.integers(1, 2000))]))
    ll = max(br, oh) + int(rng.integers(0, 3000))
    planes = []
    numbers = rng.choice(np.arange(1, 10_000), size=n, replace=False)
    for i in range(n):
        status = int(rng.integers(0, 7))
        plane = {
            "aircraft_number": int(numbers[i]),
            "ac_type": str(rng.choice(["mi8", "mi17"])),
            "status": status,
            "sne": int(rng.integers(0, ll + 1)),
            "ppr": int(rng.integers(0, oh + 1)),
            "repair_days": int(rng.integers(0, 4)) if status == 4 else 0,
        }
        if status == 0:
            plane["delivery"] = np.datetime64(D0) + int(rng.integers(0, days + 1))
        if rng.random() < 0.2:
            plane["ll"] = ll + int(rng.integers(-200, 200))
        planes.append(plane)
    targets = {t: [int(rng.integers(0, n + 3)) for _ in range(days + 1)] for t in ("mi8", "mi17")}
    minutes = {
        p["aircraft_number"]: [None if rng.random() < 0.15 else int(rng.integers(0, 200)) for _ in range(days + 1)]
        for p in planes
    }
    return make_inputs(
        planes,
        days,
        targets=targets,
        minutes=minutes,
        repair_time=int(rng.integers(1, 6)),
        partout_time=int(rng.integers(0, 3)),
        assembly_time=int(rng.integers(0, 3)),
        mp1_limits=(ll, oh, br),
    )


def run_model(inputs: LifecycleInputs, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """MP2 (per airframe, per type) of a run of the numpy backend with every invariant checked."""
    from simfleet.worker.lifecycle.run import MemorySink, run_local

    sink = MemorySink()
    run_local(inputs, sink=sink, debug=True, **kwargs)
    return sink.table("mp2"), sink.table("mp2_daily")
