"""A local lifecycle run: build, create, run in chunks of days, hand MP2 to a sink; with timings and a summary.

The sink receives MP2 chunk by chunk while the run goes on (:mod:`~simfleet.worker.lifecycle.sinks`), so memory does
not grow with days x airframes unless the sink keeps everything; with ``log="aggregates"`` the per-airframe log is not
produced at all. The sinks are re-exported here for callers that import them from the run module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from simfleet.shared.errors import ConfigError
from simfleet.shared.lifecycle_contract import AC_TYPES, TRANSITIONS, LifecycleInputs
from simfleet.shared.messages.lifecycle import MemberSummary
from simfleet.shared.messages.plan import Ensemble
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.ensemble import ensemble_environment
from simfleet.worker.lifecycle.environment import Environment, build_environment, check_run_memory
from simfleet.worker.lifecycle.sinks import MemorySink, NullSink, ParquetSink, Sink, TeeSink
from simfleet.worker.lifecycle.variants import check_ensemble, parse_variants

__all__ = ["MemorySink", "NullSink", "ParquetSink", "RunReport", "Sink", "TeeSink", "run_local",
           "summarize"]  # fmt: skip


@dataclass
class RunReport:
    """What a run did and how long each stage took.

    For an ensemble, ``transitions``, ``status_counts_end`` and ``shortfall_days`` add up every member (airframe
    moves, airframes, days) and ``members`` holds each one; ``members`` is empty for a single run.
    """

    airframes: int
    days: int
    log: str
    transitions: dict[str, int]
    status_counts_end: dict[int, int]
    shortfall_days: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)
    airframe_rows: int = 0
    members: list[MemberSummary] = field(default_factory=list)
    shortfall_aircraft_days: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        out = {
            "airframes": self.airframes,
            "days": self.days,
            "log": self.log,
            "transitions": self.transitions,
            "status_counts_end": {str(k): v for k, v in self.status_counts_end.items()},
            "shortfall_days": self.shortfall_days,
            "shortfall_aircraft_days": self.shortfall_aircraft_days,
            "timings_s": self.timings_s,
            "airframe_rows": self.airframe_rows,
        }
        if self.members:
            out["members"] = [msgspec.to_builtins(member, str_keys=True) for member in self.members]
        return out


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
    on_progress: Callable[[float, str], None] | None = None,
    ensemble: Ensemble | None = None,
) -> RunReport:
    """Run the model over validated ``inputs``, chunk by chunk into ``sink``.

    Args:
        inputs: validated inputs (see :func:`simfleet.worker.lifecycle.inputs.load_inputs`).
        days: horizon (default: the inputs' own); shorter is allowed, longer is not.
        log: ``full`` (per airframe and per type) or ``aggregates`` (per type only).
        sink: where MP2 chunks go (default: dropped, for the report alone).
        chunk_days: days per chunk handed to the sink.
        backend: a name known to :func:`simfleet.worker.lifecycle.backends.get_backend`.
        debug: check every invariant after each day.
        load_s: time the caller spent loading the inputs, reported as ``load``.
        on_progress: hears ``(fraction of the days done, label)`` after each chunk (a progress display).
        ensemble: plan variants, replications and maintenance options (docs/planning.md), run as one stacked
            simulation; ``None`` is today's single deterministic run. It is checked here, fields and dates
            (:func:`~simfleet.worker.lifecycle.variants.check_ensemble`), with errors naming ``ensemble`` and the key.

    Returns:
        The report: transitions by kind, status counts at the end, days with a shortfall, timings (load / create /
        run / collect, in seconds).

    Raises:
        ConfigError: ``chunk_days`` or ``days`` is out of range, or the run needs more memory than is available
            (the memory rule of :func:`~simfleet.worker.lifecycle.environment.run_memory_bytes`), before anything
            is allocated.
    """
    if isinstance(chunk_days, bool) or not isinstance(chunk_days, int) or chunk_days < 1:
        raise ConfigError(f"expected a positive integer, got {chunk_days!r}", key="chunk_days")
    if days is not None and not 0 <= days <= inputs.days:
        raise ConfigError(f"expected 0..{inputs.days} (the inputs' horizon), got {days!r}", key="days")
    sink = sink or NullSink()
    if ensemble is not None:  # a caller's Ensemble was never decoded: check its fields and its dates here
        ensemble = parse_variants(ensemble, "ensemble")
        check_ensemble(ensemble, inputs.version_date, inputs.days if days is None else days, source="ensemble")
    members = 1 if ensemble is None else ensemble.members
    airframes = len(inputs.mp3["aircraft_number"])
    check_run_memory(airframes * members, inputs.days if days is None else days, chunk_days=chunk_days, log=log,
                     keep_rows=sink.keeps_rows)  # fmt: skip
    timings = {"load": load_s}
    started = time.perf_counter()
    env = ensemble_environment(build_environment(inputs, days), ensemble)
    sim = get_backend(backend, debug=debug)
    sim.build(env, log=log)
    sim.create()
    timings["create"] = time.perf_counter() - started
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
        if on_progress is not None:
            on_progress(sim.day / env.days, f"day {sim.day:,}/{env.days:,}")
    sink.close()
    timings["run"], timings["collect"] = run_s, collect_s
    report = summarize(env, sim.state_dict(), log=log, airframe_rows=rows, ensemble=ensemble)
    report.timings_s = timings
    return report


Figures = tuple[dict[str, int], dict[int, int], dict[str, int], dict[str, int]]


def _figures(state: dict[str, Any], agents: slice, groups: slice) -> Figures:
    """Transitions by kind, airframes by status, shortfall days and aircraft-days by type, of some members."""

    def by_type(name: str) -> dict[str, int]:
        values = np.asarray(state.get(name, np.zeros(len(state["shortfall_days"]))), dtype=np.int64)[groups]
        return {t: int(count) for t, count in zip(AC_TYPES, values.reshape(-1, len(AC_TYPES)).sum(axis=0),
                                                  strict=True)}  # fmt: skip

    by_status = np.bincount(np.asarray(state["status"], dtype=np.int64)[agents], minlength=7)
    by_kind = np.asarray(state["transitions"])[:, groups].sum(axis=1)
    return (
        {f"{a}->{b}": int(count) for (a, b), count in zip(TRANSITIONS, by_kind, strict=True)},
        {code: int(count) for code, count in enumerate(by_status)},
        by_type("shortfall_days"),
        by_type("shortfall_aircraft_days"),
    )


def summarize(
    env: Environment, state: dict[str, Any], *, log: str, airframe_rows: int = 0, ensemble: Ensemble | None = None
) -> RunReport:
    """The report of a run from its final :meth:`~simfleet.worker.lifecycle.backends.LifecycleBackend.state_dict`.

    With an ``ensemble`` (whose stacked ``env`` it is) the report holds every member's figures too.
    """
    transitions, status, shortfall, short_aircraft = _figures(state, slice(None), slice(None))
    report = RunReport(
        airframes=env.airframes,
        days=env.days,
        log=log,
        transitions=transitions,
        status_counts_end=status,
        shortfall_days=shortfall,
        shortfall_aircraft_days=short_aircraft,
        airframe_rows=airframe_rows,
    )
    if ensemble is None:
        return report
    n, types = env.airframes, len(AC_TYPES)
    for member in range(ensemble.members):
        groups = slice(member * types, (member + 1) * types)
        figures = _figures(state, slice(member * n, (member + 1) * n), groups)
        variant = member // ensemble.replications
        transitions, status, shortfall, short_aircraft = figures
        report.members.append(MemberSummary(
            variant_id=variant, variant=ensemble.variants[variant].name, replication=member % ensemble.replications,
            transitions=transitions, status_counts_end=status, shortfall_days=shortfall,
            shortfall_aircraft_days=short_aircraft))  # fmt: skip
    return report
