"""Local runner: the replications of a study in a process pool on this machine, one process per core.

This is the baseline the fleet is measured against and the reference it must match: replication ``i`` of a study
with seed ``s`` is always ``run_replication(scenario, s, i)``, wherever it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
from simfleet.shared.messages.study import DEFAULT_ENGINE, Engine
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.engines import prepare, run_replication, simulation
from simfleet.worker.des.scenario import Scenario, parse_scenario


def default_processes() -> int:
    """One process per core."""
    return max(1, os.cpu_count() or 1)


def _replicate(args: tuple[dict[str, Any], str, int, int, Engine]) -> ReplicationSummary:
    data, source, seed, replication, engine = args
    return run_replication(parse_scenario(data, source), seed, replication, engine)


Progress = Callable[[float, str], None]
"""Called now and then with the fraction of a local study done (0..1) and a short label."""

PROGRESS_STEPS = 100
"""A replication run in this process reports its progress this many times over its horizon."""


def run_replications(
    scenario: Scenario,
    *,
    replications: int,
    seed: int,
    processes: int | None = None,
    first: int = 0,
    on_progress: Progress | None = None,
    engine: Engine = DEFAULT_ENGINE,
) -> list[ReplicationSummary]:
    """Run replications ``first`` .. ``replications``-1 on ``engine`` and return their summaries in replication order.

    ``on_progress`` hears how far the study is: in one process, within each replication (its simulated time); in a
    pool, as replications end. The engine is made ready (:func:`~simfleet.worker.des.engines.prepare`) before the
    pool starts, so that its processes inherit the compiled kernel instead of each loading or compiling it.
    """
    indices = range(first, replications)
    processes = min(processes or default_processes(), len(indices))
    report = on_progress or (lambda fraction, label: None)
    prepare(engine)
    if processes <= 1:
        return [_stepped(scenario, seed, i, (i - first, len(indices)), report, engine) for i in indices]
    jobs = [(scenario.to_dict(), scenario.source, seed, i, engine) for i in indices]
    pool = ProcessPoolExecutor(max_workers=processes)
    try:
        futures = [pool.submit(_replicate, job) for job in jobs]
        for done, finished in enumerate(as_completed(futures), start=1):
            finished.result()  # a failed replication ends the study now, not after the others
            report(done / len(futures), f"{done}/{len(futures)} replications done, {processes} processes")
        results = [future.result() for future in futures]
    except BaseException:
        # A failed replication, Ctrl-C or SIGTERM: do not wait for the others (a study can take hours).
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return results


def _stepped(scenario: Scenario, seed: int, replication: int, position: tuple[int, int],
             report: Progress, engine: Engine) -> ReplicationSummary:  # fmt: skip
    """One replication in this process, run in steps of simulated time so that its progress can be told."""
    done, total = position
    sim = simulation(scenario, seed, replication, engine)
    for _ in sim.slices(PROGRESS_STEPS):
        within = min(1.0, sim.now / scenario.horizon_s)
        rate = sim.events / sim.wall_s if sim.wall_s else 0.0
        report((done + within) / total, f"replication {done + 1}/{total}, {rate / 1e3:.0f}k events/s")
    return sim.summary()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending replications and end the running ones now, instead of waiting for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)  # reaped, so that no child of ours outlives the study


def run_study(
    scenario: Scenario, *, replications: int | None = None, seed: int | None = None, processes: int | None = None,
    engine: Engine = DEFAULT_ENGINE,
) -> StudyAggregate:
    """Run a study locally and return its aggregate (the scenario's replications and seed unless given)."""
    summaries = run_replications(
        scenario,
        replications=scenario.replications if replications is None else replications,
        seed=scenario.seed if seed is None else seed,
        processes=processes,
        engine=engine,
    )
    return aggregate(summaries)
