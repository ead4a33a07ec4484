"""A local lifecycle run: load, create, run in chunks of days, hand MP2 to a sink; with timings and a summary.

Sinks receive MP2 chunk by chunk while the run goes on, so memory does not grow with days x airframes (with
``log="aggregates"`` the per-airframe log is not produced at all). :class:`MemorySink` keeps everything (tests,
small runs); :class:`ParquetSink` writes one file per chunk and table, each written under a temporary name and
renamed, so a directory never holds half a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .backends import get_backend
from .backends.base import Columns
from .environment import build_environment
from .inputs import AC_TYPES, LifecycleInputs
from .schema import TRANSITIONS


class Sink:
    """Receives MP2 chunks: per airframe and day (empty with aggregates only), and per type and day."""

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Take one chunk of days."""

    def close(self) -> None:
        """The run is over."""


class MemorySink(Sink):
    """Keeps every chunk; :meth:`table` concatenates them."""

    def __init__(self) -> None:
        self.airframe: list[Columns] = []
        self.daily: list[Columns] = []

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Keep the chunk."""
        if airframe:
            self.airframe.append(airframe)
        self.daily.append(daily)

    def table(self, name: str) -> Columns:
        """``mp2`` (per airframe) or ``mp2_daily`` (per type), all chunks concatenated."""
        chunks = self.airframe if name == "mp2" else self.daily
        if not chunks:
            return {}
        return {column: np.concatenate([c[column] for c in chunks]) for column in chunks[0]}


class TeeSink(Sink):
    """Hands every chunk to several sinks, in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Pass the chunk on."""
        for sink in self.sinks:
            sink.write(first_day, airframe, daily)

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()


class ParquetSink(Sink):
    """Writes ``<dir>/mp2/part-<first day>.parquet`` and ``<dir>/mp2_daily/part-<first day>.parquet``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.files: list[Path] = []

    def write(self, first_day: int, airframe: Columns, daily: Columns) -> None:
        """Write the chunk's tables atomically."""
        for name, columns in (("mp2", airframe), ("mp2_daily", daily)):
            if not columns:
                continue
            folder = self.directory / name
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"part-{first_day:05d}.parquet"
            partial = target.with_suffix(".parquet.tmp")
            pq.write_table(pa.table(columns), partial)
            partial.replace(target)
            self.files.append(target)


@dataclass
class RunReport:
    """What a run did and how long each stage took."""

    airframes: int
    days: int
    log: str
    transitions: dict[str, int]
    status_counts_end: dict[int, int]
    shortfall_days: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)
    airframe_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "airframes": self.airframes,
            "days": self.days,
            "log": self.log,
            "transitions": self.transitions,
            "status_counts_end": {str(k): v for k, v in self.status_counts_end.items()},
            "shortfall_days": self.shortfall_days,
            "timings_s": self.timings_s,
            "airframe_rows": self.airframe_rows,
        }


def run_local(
    inputs: LifecycleInputs,
    *,
    days: int | None = None,
    log: str = "full",
    sink: Sink | None = None,
    chunk_days: int = 365,
    backend: str = "numpy",
    debug: bool = False,
    load_s: float = 0.0,
) -> RunReport:
    """Run the model over ``inputs`` (all its days unless ``days``), chunk by chunk into ``sink``."""
    timings = {"load": load_s}
    started = time.perf_counter()
    env = build_environment(inputs, days)
    sim = get_backend(backend, debug=debug)
    sim.build(env, log=log)
    sim.create()
    timings["create"] = time.perf_counter() - started
    sink = sink or Sink()
    transitions = {f"{a}->{b}": 0 for a, b in TRANSITIONS}
    shortfall = {name: 0 for name in AC_TYPES}
    rows = 0
    run_s = collect_s = 0.0
    while sim.day < env.days:
        first = sim.day
        tick = time.perf_counter()
        sim.step(chunk_days)
        tock = time.perf_counter()
        airframe, daily = sim.read_chunk()
        sink.write(first, airframe, daily)
        run_s += tock - tick
        collect_s += time.perf_counter() - tock
        rows += len(airframe.get("day", ()))
        for a, b in TRANSITIONS:
            transitions[f"{a}->{b}"] += int(daily[f"trans_{a}_{b}"].sum())
        for code, name in enumerate(AC_TYPES):
            shortfall[name] += int(((daily["ac_type"] == code) & (daily["shortfall"] > 0)).sum())
    sink.close()
    timings["run"], timings["collect"] = run_s, collect_s
    status = np.bincount(np.asarray(sim.state_dict()["status"]), minlength=7)
    return RunReport(
        airframes=env.n,
        days=env.days,
        log=log,
        transitions=transitions,
        status_counts_end={code: int(n) for code, n in enumerate(status)},
        shortfall_days=shortfall,
        timings_s=timings,
        airframe_rows=rows,
    )
