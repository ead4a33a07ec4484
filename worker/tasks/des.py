"""``des.run`` (one replication) and ``des.aggregate`` (the chord callback of a study).

A replication is a pure function of (scenario, seed, replication index), so the task is idempotent: when its pool
process dies the message is redelivered (late ack, reject on worker lost) and running it again gives the same
summary. The simulation advances in slices of simulated time; between slices the task reports PROGRESS (at most
once per ``progress_interval_s``) and checks the process's resident memory against the per-replication limit.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import msgpack
import psutil
from celery import Task, shared_task
from celery.utils.log import get_task_logger

from simfleet.shared.errors import MemoryLimitExceeded
from simfleet.worker.des.aggregate import aggregate
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario, parse_scenario
from simfleet.worker.runtime import worker_settings

logger = get_task_logger(__name__)
SLICES = 50
MEMORY_CHECK_EVERY_S = 0.1
"""Reading the resident size costs tens of microseconds: check it at most this often (and at the first slice)."""



@lru_cache(maxsize=8)
def _parsed(packed: bytes, study_id: str) -> Scenario:
    """Validated scenarios by content: a study's replications share one, so each process parses it once."""
    return parse_scenario(msgpack.unpackb(packed), source=f"study {study_id or '-'}")


@shared_task(name="des.run", bind=True, acks_late=True, reject_on_worker_lost=True)
def des_run(self: Task, scenario: dict[str, Any], seed: int, replication: int, study_id: str = "") -> dict[str, Any]:
    """Run replication ``replication`` of ``scenario`` with ``seed`` and return its summary."""
    settings = worker_settings().cpu_worker
    parsed = _parsed(msgpack.packb(scenario), study_id)
    sim = Simulation(parsed, seed, replication)
    limit_bytes = settings.max_memory_per_replication_mb * 2**20
    process = psutil.Process()
    step = parsed.horizon_s / SLICES
    until = step
    last_report = time.monotonic()
    logger.info("replication %d of %s started (study %s)", replication, parsed.name, study_id or "-")
    last_memory_check = 0.0
    while not sim.run(until_s=until):
        until += step
        now = time.monotonic()
        if now - last_memory_check >= MEMORY_CHECK_EVERY_S:
            last_memory_check = now
            rss = process.memory_info().rss
            if rss > limit_bytes:
                raise MemoryLimitExceeded(
                    f"replication {replication} of scenario {parsed.name!r} uses {rss / 2**20:.0f} MiB, above the "
                    f"limit of {settings.max_memory_per_replication_mb} MiB (cpu_worker.max_memory_per_replication_mb)"
                )
        if now - last_report >= settings.progress_interval_s:
            last_report = now
            self.update_state(
                state="PROGRESS",
                meta={
                    "study_id": study_id,
                    "replication": replication,
                    "sim_time_s": sim.now,
                    "horizon_s": parsed.horizon_s,
                    "percent": min(100.0, 100.0 * sim.now / parsed.horizon_s),
                    "events": sim.events,
                    "events_per_s": sim.events / sim.wall_s if sim.wall_s else 0.0,
                    "in_flight": sim.n_sys,
                },
            )
    summary = sim.summary()
    logger.info(
        "replication %d of %s done: %d events in %.2f s", replication, parsed.name, summary["events"], summary["wall_s"]
    )
    return summary


@shared_task(name="des.aggregate", acks_late=True, reject_on_worker_lost=True)
def des_aggregate(summaries: list[dict[str, Any]], study_id: str = "") -> dict[str, Any]:
    """Merge a study's replication summaries exactly as the local runner does."""
    result = aggregate(summaries)
    result["study_id"] = study_id
    logger.info("study %s aggregated over %d replications", study_id or "-", len(summaries))
    return result
