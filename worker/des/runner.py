"""Local runner: the replications of a study in a process pool on this machine, one process per core.

This is the baseline the fleet is measured against and the reference it must match: replication ``i`` of a study
with seed ``s`` is always ``run_replication(scenario, s, i)``, wherever it runs.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.scenario import Scenario, parse_scenario


def default_processes() -> int:
    """One process per core."""
    return max(1, os.cpu_count() or 1)


def _replicate(args: tuple[dict[str, Any], str, int, int]) -> ReplicationSummary:
    data, source, seed, replication = args
    return run_replication(parse_scenario(data, source), seed, replication)


def run_replications(
    scenario: Scenario, *, replications: int, seed: int, processes: int | None = None, first: int = 0
) -> list[ReplicationSummary]:
    """Run replications ``first`` .. ``replications``-1 and return their summaries in replication order."""
    indices = range(first, replications)
    processes = min(processes or default_processes(), len(indices))
    if processes <= 1:
        return [run_replication(scenario, seed, i) for i in indices]
    jobs = [(scenario.to_dict(), scenario.source, seed, i) for i in indices]
    pool = ProcessPoolExecutor(max_workers=processes)
    try:
        futures = [pool.submit(_replicate, job) for job in jobs]
        results = [future.result() for future in futures]
    except BaseException:
        # A failed replication, Ctrl-C or SIGTERM: do not wait for the others (a study can take hours).
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return results


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


def run_study(
    scenario: Scenario, *, replications: int | None = None, seed: int | None = None, processes: int | None = None
) -> StudyAggregate:
    """Run a study locally and return its aggregate (the scenario's replications and seed unless given)."""
    summaries = run_replications(
        scenario,
        replications=scenario.replications if replications is None else replications,
        seed=scenario.seed if seed is None else seed,
        processes=processes,
    )
    return aggregate(summaries)
