"""``make demo``: the main jobs end to end on this machine.

Today it runs the DES studies through the local process pool (one process per core): the mixed workload with 8
replications and the deep-research SLA search. The fleet version (Redis, Celery workers, Flower) replaces the local
pool when the fleet lands; the printed tables stay the same.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from producer.report import sla_table, study_table
from producer.sla import search_sla
from worker.des.runner import run_replications, run_study
from worker.des.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "config" / "scenarios"


def _local(scenario: Scenario, replications: int, seed: int) -> list[dict[str, Any]]:
    return run_replications(scenario, replications=replications, seed=seed)


def main() -> int:
    """Run the demo; returns the exit code."""
    started = time.perf_counter()
    print("== DES study: mixed_workload.yaml, 8 replications, local process pool\n", flush=True)
    mixed = load_scenario(SCENARIOS / "mixed_workload.yaml")
    print(study_table(run_study(mixed, replications=8)), flush=True)

    print("\n== DES SLA search: deep_research_sla.yaml (largest rate with p95 < 30 s)\n", flush=True)
    deep = load_scenario(SCENARIOS / "deep_research_sla.yaml")
    assert deep.sla is not None
    result = search_sla(
        deep,
        _local,
        request_type=deep.sla.request_type,
        metric=deep.sla.metric,
        threshold_s=deep.sla.threshold_s,
        replications=deep.sla.replications,
        seed=deep.seed,
        rel_tol=deep.sla.rel_tol,
        scale=deep.sla.scale,
    )
    print(sla_table(result))
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
    return 0 if result.converged else 1


if __name__ == "__main__":
    sys.exit(main())
