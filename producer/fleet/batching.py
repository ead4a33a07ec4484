"""How many replications a ``des.run`` task carries: short ones go in batches, so Celery's per-task cost is paid once.

The rule (``des`` in the settings, :class:`~simfleet.shared.settings.DesSettings`):

    batch = min(floor(batch_target_s / seconds per replication), ceil(replications / worker processes), max_batch)

and at least 1. The seconds per replication are measured: the mean ``wall_s`` of the last study of the same scenario
name this client saw finish (a search's probes and a precision run's rounds learn from the ones before), else a
pilot run here of one replication for at most ``pilot_s`` (extrapolated from the simulated time it reached). The
worker processes are those of the live workers consuming ``des.run`` (from their heartbeats), so that a study is
never packed into fewer tasks than there are processes to run them.

The batch size depends on timings, so it can differ from run to run; the results never do: replication ``i`` is the
same run whatever batch carries it, and the aggregate is made from the summaries in index order.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

from simfleet.shared.messages.study import DEFAULT_ENGINE, MAX_BATCH, Engine
from simfleet.shared.settings import DesSettings

if TYPE_CHECKING:
    from simfleet.worker.des.scenario import Scenario

PILOT_SLICES = 50
"""A pilot run advances in this many slices of the horizon, looking at the clock between them."""


def batch_size(replications: int, replication_s: float, processes: int, settings: DesSettings) -> int:
    """Replications per task for a study of ``replications`` that take ``replication_s`` seconds each.

    Args:
        replications: the study's replications.
        replication_s: measured seconds of one replication (0 or less: unknown, no batching).
        processes: worker processes that will run the study (at least 1 is assumed).
        settings: the target and the cap.
    """
    if replications <= 1 or settings.batch_target_s <= 0 or replication_s <= 0:
        return 1
    by_time = math.floor(settings.batch_target_s / replication_s)
    by_spread = math.ceil(replications / max(1, processes))
    return max(1, min(by_time, by_spread, settings.max_batch, MAX_BATCH))


def pilot_replication_s(scenario: Scenario, seed: int, replication: int, budget_s: float,
                        engine: Engine = DEFAULT_ENGINE) -> float:  # fmt: skip
    """Seconds replication ``replication`` of ``scenario`` takes on ``engine`` here, measured for at most ``budget_s``.

    A replication that ends within the budget is timed; one that does not is extrapolated from the share of the
    horizon it simulated (its drain, if any, is not counted: a lower bound, which errs towards smaller batches). The
    engine is made ready first (the kernel's compile or cache load is not timed: workers do it before they start).
    """
    from simfleet.worker.des.engines import prepare, simulation

    prepare(engine)
    started = time.perf_counter()
    sim = simulation(scenario, seed, replication, engine)
    for _ in sim.slices(PILOT_SLICES):
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s:
            return elapsed * scenario.horizon_s / max(sim.now, scenario.horizon_s / PILOT_SLICES)
    return time.perf_counter() - started


def local_processes() -> int:
    """This machine's cores: the processes a study is spread over when no worker is seen (a local fleet)."""
    return os.cpu_count() or 1


__all__ = ["PILOT_SLICES", "batch_size", "local_processes", "pilot_replication_s"]
