import json
import os
import signal
from pathlib import Path

import pytest
from celery.result import AsyncResult

from simfleet.shared.errors import StudyFailed
from simfleet.worker.des.runner import run_study
from simfleet.worker.des.scenario import load_scenario, parse_scenario

from .conftest import wait_until

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def comparable(aggregate: dict) -> dict:
    """The study answer without wall-clock figures and the fleet's study id."""
    return {k: v for k, v in aggregate.items() if k not in ("run", "study_id")}


def test_fleet_study_gives_exactly_the_local_runners_aggregate(fleet, start_worker):
    worker = start_worker()
    scenario = load_scenario(SCENARIOS / "mixed_workload.yaml")
    study = fleet.run_des(scenario, replications=20, seed=123)
    result = study.result(timeout=120)
    local = run_study(scenario, replications=20, seed=123, processes=1)
    assert result["replications"] == 20
    assert comparable(result) == comparable(local)
    assert result["study_id"] == study.id
    progress = study.progress()
    assert progress.done == 20 and progress.finished
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    task_lines = [line for line in lines if line["task"] == "des.run"]
    assert task_lines and all(line["study_id"] == study.id and line["worker"] == worker.name for line in task_lines)


def long_scenario():
    data = load_scenario(SCENARIOS / "mixed_workload.yaml").to_dict()
    return parse_scenario({**data, "horizon_s": 12_000, "name": "mixed-long"})


def test_killing_a_pool_process_mid_study_still_counts_every_replication_once(fleet, start_worker):
    worker = start_worker(concurrency=2)
    scenario = long_scenario()
    study = fleet.run_des(scenario, replications=6, seed=5)
    running = wait_until(
        lambda: [r for r in study.progress().running if r.get("percent", 0) > 5], "a replication in progress"
    )
    victim_replication = running[0]["replication"]
    active = fleet.app.control.inspect(destination=[worker.name], timeout=2).active()[worker.name]
    victim = next(t for t in active if t["id"] == f"{study.id}-{victim_replication}")
    os.kill(victim["worker_pid"], signal.SIGKILL)
    result = study.result(timeout=240)
    assert "WorkerLostError" in worker.log.read_text()
    assert result["replications"] == 6
    assert [s["replication"] for s in study.summaries(timeout=10)] == list(range(6))
    assert comparable(result) == comparable(run_study(scenario, replications=6, seed=5, processes=1))


def test_high_priority_studies_are_served_before_background_ones(fleet, start_worker, fleet_settings):
    scenario = load_scenario(SCENARIOS / "web_search_load_test.yaml")
    background = fleet.run_des(scenario, replications=6, seed=1, priority="background")
    high = fleet.run_des(scenario, replications=6, seed=1, priority="high")
    start_worker(concurrency=1)
    high.result(timeout=120)
    background.result(timeout=120)

    def finished_at(task_id):
        return AsyncResult(task_id, app=fleet.app).date_done

    assert max(finished_at(t) for t in high.task_ids) < max(finished_at(t) for t in background.task_ids)
    # The single process takes one message at a time: after at most one background replication already fetched,
    # every high-priority replication finishes before the remaining background ones.
    later = sorted(finished_at(t) for t in background.task_ids)
    assert sum(1 for t in later if t < max(finished_at(h) for h in high.task_ids)) <= 1


def test_a_replication_over_the_memory_limit_fails_with_a_clear_message(fleet, start_worker):
    start_worker(SIMFLEET_CPU_WORKER__MAX_MEMORY_PER_REPLICATION_MB="20")
    study = fleet.run_des(SCENARIOS / "web_search_load_test.yaml", replications=1)
    with pytest.raises(StudyFailed, match=r"above the limit of 20 MiB \(cpu_worker.max_memory_per_replication_mb\)"):
        study.result(timeout=60)


def test_study_status_command_reports_progress_and_answer(fleet, start_worker, capsys):
    from simfleet.producer.cli import main

    start_worker()
    study = fleet.run_des(SCENARIOS / "web_search_load_test.yaml", replications=2)
    study.result(timeout=60)
    assert main(["study", "status", study.id, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["done"] == 2 and state["finished"] and state["result"]["replications"] == 2
