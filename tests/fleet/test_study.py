"""DES studies on the fleet: real Redis, real CPU worker processes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from celery.result import AsyncResult

from simfleet.producer.cli import main
from simfleet.shared.errors import ConfigError, StudyFailed
from simfleet.shared.messages import to_wire
from simfleet.shared.messages.des import StudyAggregate
from simfleet.worker.des.runner import run_study
from simfleet.worker.des.scenario import load_scenario, parse_scenario
from tests.des.helpers import faulty

from .conftest import wait_until

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def comparable(aggregate: StudyAggregate) -> dict:
    """The study answer without its wall-clock figures and the fleet's study id."""
    return {k: v for k, v in to_wire(aggregate).items() if k not in ("run", "study_id")}


def test_fleet_study_gives_exactly_the_local_runners_aggregate(fleet, start_worker):
    worker = start_worker()
    scenario = load_scenario(SCENARIOS / "mixed_workload.yaml")
    study = fleet.run_des(scenario, replications=20, seed=123)
    result = study.wait(timeout=120)
    local = run_study(scenario, replications=20, seed=123, processes=1)
    assert result.replications == 20 and result.study_id == study.id
    assert comparable(result) == comparable(local)
    progress = study.progress()
    assert progress.done == 20 and progress.finished and progress.state == "done"
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    task_lines = [line for line in lines if line["task"] == "des.run"]
    assert task_lines and all(line["study_id"] == study.id and line["worker"] == worker.name for line in task_lines)


def test_a_study_runs_on_the_engine_it_names_and_both_give_the_same_answer(fleet, start_worker):
    worker = start_worker()
    scenario = load_scenario(SCENARIOS / "mixed_workload.yaml")
    compiled = fleet.run_des(scenario, replications=4, seed=5)
    python = fleet.run_des(scenario, replications=4, seed=5, engine="python")
    assert comparable(compiled.wait(timeout=120)) == comparable(python.wait(timeout=120))
    assert (fleet.study(compiled.id).record.engine, fleet.study(python.id).record.engine) == ("compiled", "python")
    lines = worker.lines()
    # The worker made the kernel ready before it took a task; each replication says which engine ran it.
    ready = next(i for i, line in enumerate(lines) if line.startswith("DES kernel ready in"))
    first_task = next(i for i, line in enumerate(lines) if "started on the" in line)
    assert ready < first_task
    for study, engine in ((compiled, "compiled"), (python, "python")):
        started = [line for line in lines if f"(study {study.id})" in line and "started on the" in line]
        assert len(started) == 4 and all(f"started on the {engine} engine" in line for line in started)
    with pytest.raises(ConfigError, match="engine: must be one of compiled, python, got 'numba'"):
        fleet.run_des(scenario, replications=2, engine="numba")


def test_a_model_v2_study_with_a_trace_file_runs_on_the_fleet_exactly_as_locally(fleet, start_worker, tmp_path):
    # Failures, timeouts, retries, fallbacks, priorities, variants, attributes, an MMPP, and a trace file that only the
    # producer can read: the trace travels inside the message, so the file is gone before the worker runs.
    worker = start_worker()
    data = faulty(horizon_s=600.0).to_dict()
    (tmp_path / "arrivals.csv").write_text("arrival_s\n" + "\n".join(f"{i * 0.9:.3f}" for i in range(700)) + "\n")
    chat = data["request_types"]["chat"]
    del chat["rate_per_min"]
    chat["arrival"] = {"process": "trace", "file": "arrivals.csv"}
    path = tmp_path / "v2.yaml"
    path.write_text(yaml.safe_dump(data))
    scenario = load_scenario(path)
    (tmp_path / "arrivals.csv").unlink()
    result = fleet.run_des(scenario, replications=4, seed=3).wait(timeout=120)
    assert comparable(result) == comparable(run_study(scenario, replications=4, seed=3, processes=1))
    assert result.types["chat"].arrived.mean == 555  # the trace's arrivals in [warmup 100 s, horizon 600 s)
    assert result.overall.failed.mean > 0 and result.nodes["chat"]["fetch"]["timed_out"].mean > 0
    assert worker.log.exists()


# The tests that kill or cancel replications mid-run run them on the Python engine, whose replications last long enough
# to be cut (the kernel runs this scenario in 0.05 s); the local answers they must equal come from the kernel.
def long_scenario(horizon_s: float = 12_000):
    data = load_scenario(SCENARIOS / "mixed_workload.yaml").to_dict()
    return parse_scenario({**data, "horizon_s": horizon_s, "name": "mixed-long"})


@pytest.mark.death
def test_killing_a_pool_process_mid_study_still_counts_every_replication_once(fleet, start_worker):
    worker = start_worker(concurrency=2)
    scenario = long_scenario()
    study = fleet.run_des(scenario, replications=6, seed=5, engine="python")
    running = wait_until(lambda: [r for r in study.progress().running if r.percent > 5], "a replication in progress")
    active = fleet.app.control.inspect(destination=[worker.name], timeout=2).active()[worker.name]
    victim = next(t for t in active if t["id"] == f"{study.id}-{running[0].replication}")
    os.kill(victim["worker_pid"], signal.SIGKILL)
    result = study.wait(timeout=240)
    assert "WorkerLostError" in worker.log.read_text()
    assert result.replications == 6
    assert [s.replication for s in study.summaries(timeout=10)] == list(range(6))
    assert comparable(result) == comparable(run_study(scenario, replications=6, seed=5, processes=1))


@pytest.mark.death
def test_a_whole_cpu_worker_killed_mid_study_has_its_replications_run_again_at_once(fleet, start_worker):
    first, second = start_worker(concurrency=1), start_worker(concurrency=1)
    scenario = long_scenario(8_000)
    study = fleet.run_des(scenario, replications=4, seed=9, engine="python", batch=1)
    wait_until(lambda: len(study.progress().running) == 2, "both workers running a replication")
    first.kill()
    result = study.wait(timeout=120)  # far below the broker's 12-hour visibility timeout
    assert result.replications == 4
    assert [s.replication for s in study.summaries(timeout=10)] == list(range(4))
    assert comparable(result) == comparable(run_study(scenario, replications=4, seed=9, processes=1))
    assert any(f"worker {first.name} is silent" in line and "1 replication(s) published again" in line
               for line in second.lines())  # fmt: skip


def test_high_priority_studies_are_served_before_background_ones(fleet, start_worker):
    scenario = load_scenario(SCENARIOS / "web_search_load_test.yaml")
    background = fleet.run_des(scenario, replications=6, seed=1, priority="background")
    high = fleet.run_des(scenario, replications=6, seed=1, priority="high")
    start_worker(concurrency=1)
    fleet.wait_all([high, background], timeout=120)

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
    with pytest.raises(StudyFailed) as failure:
        study.wait(timeout=60)
    assert failure.value.error_type == "MemoryLimitExceeded" and failure.value.stage.startswith("des.run")
    assert "above the limit of 20 MiB (cpu_worker.max_memory_per_replication_mb)" in failure.value.reason


def test_a_cancelled_study_stops_and_says_so(fleet, start_worker, capsys):
    start_worker(concurrency=1)
    study = fleet.run_des(long_scenario(), replications=4, seed=2, engine="python")
    wait_until(lambda: study.progress().running, "a replication in progress")
    assert main(["study", "cancel", study.id]) == 0
    with pytest.raises(StudyFailed) as stopped:
        study.wait(timeout=30)
    assert stopped.value.cancelled
    assert main(["study", "list"]) == 0
    listed = capsys.readouterr().out
    assert study.id in listed and "cancelled" in listed


def test_study_status_command_reports_progress_and_answer(fleet, start_worker, capsys):
    start_worker()
    study = fleet.run_des(SCENARIOS / "web_search_load_test.yaml", replications=2)
    study.wait(timeout=60)
    assert main(["study", "status", study.id, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["done"] == 2 and state["finished"] and state["result"]["replications"] == 2


def test_a_malformed_replication_message_is_rejected_and_the_worker_keeps_serving(fleet, start_worker):
    worker = start_worker(concurrency=1)
    fleet.app.send_task("des.run", args=({"study_id": "x", "replication": "one", "seed": 1, "scenario": "{}"},))
    fleet.app.send_task("des.run", args=("just text", 3), kwargs={"surprise": True})
    study = fleet.run_des(SCENARIOS / "web_search_load_test.yaml", replications=1)
    assert study.wait(timeout=60).replications == 1
    lines = "\n".join(worker.lines())
    assert "rejected a malformed message: des.run message: Expected `int`, got `str` (at $.replication)" in lines
    assert "expected one replication request, got 2 argument(s)" in lines
