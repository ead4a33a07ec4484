"""Lifecycle jobs through the fleet: a real Redis, real GPU-role worker processes (running the numpy backend)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simfleet.producer.cli import main
from simfleet.shared.errors import InputError, JobFailed
from simfleet.shared.messages.lifecycle import ClickHouseInputs

from .conftest import wait_until
from .lifecycle_helpers import assert_mp2_is_the_local_runs, make_inputs, wait_for_stage


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    return make_inputs(tmp_path / "inputs", 60, 400, seed=7)


@pytest.fixture
def big_inputs(tmp_path: Path) -> Path:
    return make_inputs(tmp_path / "big-inputs", 2500, 1095, seed=3)


def test_a_job_through_the_fleet_gives_the_local_runs_mp2(fleet, start_worker, inputs_dir, tmp_path):
    worker = start_worker(role="gpu")
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none")
    seen = []
    summary = job.wait(timeout=120, on_progress=seen.append)
    assert job.export(tmp_path / "out") == str(tmp_path / "out")
    assert_mp2_is_the_local_runs(tmp_path / "out", inputs_dir)
    assert (summary.airframes, summary.days, summary.airframe_rows) == (60, 400, 60 * 400)
    assert summary.worker == worker.name and summary.restores == 0 and summary.epoch == 0
    assert summary.end_to_end_s > 0 and {"load", "create", "run"} <= set(summary.timings_s)
    record = job.record()
    assert record.state == "done" and record.owner == "" and record.seq == 6
    assert seen[-1].state == "done" and seen[-1].finished


@pytest.mark.death
def test_killing_the_owners_pool_process_mid_execute_resumes_from_the_checkpoint(fleet, start_worker, big_inputs,
                                                                                 tmp_path):  # fmt: skip
    worker = start_worker(role="gpu")
    job = fleet.run_lifecycle(inputs=big_inputs, chunk_days=365, sink="none")
    wait_for_stage(fleet, job.id, 3)
    pid = wait_until(lambda: (r := job.record()).progress is not None and r.progress.pid, "a progress report")
    os.kill(pid, signal.SIGKILL)
    summary = job.wait(timeout=240)
    assert summary.restores >= 1 and summary.epoch == 0  # restored by the same worker: nobody to fence off
    assert any(f"job {job.id} restored at day 365" in line for line in worker.lines())
    job.export(tmp_path / "out")
    assert_mp2_is_the_local_runs(tmp_path / "out", big_inputs)


@pytest.mark.death
def test_killing_the_whole_owner_lets_a_second_worker_finish(fleet, start_worker, big_inputs, tmp_path):
    first, second = start_worker(role="gpu"), start_worker(role="gpu")
    job = fleet.run_lifecycle(inputs=big_inputs, chunk_days=365, sink="none")
    wait_for_stage(fleet, job.id, 3)
    owner = job.record().owner
    victim, survivor = (first, second) if owner == first.name else (second, first)
    victim.kill()
    summary = job.wait(timeout=240)
    assert summary.worker == survivor.name and summary.restores >= 1 and summary.epoch == 1
    assert any(f"worker {victim.name} is silent" in line for line in first.lines() + second.lines())
    job.export(tmp_path / "out")
    assert_mp2_is_the_local_runs(tmp_path / "out", big_inputs)


def test_invalid_inputs_are_refused_before_anything_is_published(fleet, inputs_dir):
    mp3 = pq.read_table(inputs_dir / "mp3.parquet").to_pydict()
    mp3["sne"][3] = -5
    pq.write_table(pa.table(mp3), inputs_dir / "mp3.parquet")
    with pytest.raises(InputError, match="mp3") as refused:
        fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100)
    assert "sne" in str(refused.value)
    assert fleet.jobs() == [] and fleet.checkpoints().store.keys("") == []  # type: ignore[attr-defined]


def test_a_load_that_fails_on_the_worker_fails_the_job_and_leaves_no_owner_or_checkpoint(fleet, start_worker):
    start_worker(role="gpu")
    missing = ClickHouseInputs(version_date=__import__("datetime").date(2025, 1, 1), version_id=99)
    job = fleet.run_lifecycle(inputs=missing, days=100)
    with pytest.raises(JobFailed) as failure:
        job.wait(timeout=60)
    assert failure.value.stage == "lifecycle.load" and failure.value.error_type == "InputError"
    assert failure.value.work_id == job.id and not failure.value.timed_out
    record = job.record()
    assert record.state == "failed" and record.owner == "" and record.epoch == 0
    assert fleet.checkpoints().refs(job.id) == []


def test_two_jobs_on_two_workers_at_once_never_mix(fleet, start_worker, tmp_path):
    first, second = start_worker(role="gpu"), start_worker(role="gpu")
    dirs = [make_inputs(tmp_path / f"inputs-{seed}", n, 500, seed, "csv") for seed, n in ((11, 50), (12, 70))]
    jobs = [fleet.run_lifecycle(inputs=d, chunk_days=50, sink="none") for d in dirs]
    summaries = fleet.wait_all(jobs, timeout=180)
    assert {s.worker for s in summaries} <= {first.name, second.name}
    for i, (job, path) in enumerate(zip(jobs, dirs, strict=True)):
        job.export(tmp_path / f"out-{i}")
        assert_mp2_is_the_local_runs(tmp_path / f"out-{i}", path)


def test_a_worker_over_its_memory_budget_evicts_and_restores_jobs_without_mixing_them(fleet, start_worker, tmp_path):
    worker = start_worker(role="gpu", SIMFLEET_GPU_WORKER__MEMORY_BUDGET_MB="1")
    dirs = [make_inputs(tmp_path / f"inputs-{seed}", 2000, 300, seed) for seed in (21, 22, 23)]
    jobs = [fleet.run_lifecycle(inputs=d, chunk_days=30, sink="none") for d in dirs]
    summaries = fleet.wait_all(jobs, timeout=300)
    assert any("dropped from memory" in line for line in worker.lines())
    assert sum(s.restores for s in summaries) >= 1
    for i, (job, path) in enumerate(zip(jobs, dirs, strict=True)):
        job.export(tmp_path / f"out-{i}")
        assert_mp2_is_the_local_runs(tmp_path / f"out-{i}", path)


def test_the_command_line_submits_follows_lists_and_inspects_a_job(fleet, start_worker, inputs_dir, tmp_path, capsys):
    start_worker(role="gpu")
    out = tmp_path / "cli-out"
    assert main(["lifecycle", "submit", "--inputs", str(inputs_dir), "--chunk-days", "150", "--out", str(out),
                 "--fleet", "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    job_id = summary["job_id"]
    assert "100.0%" in captured.err and summary["airframe_rows"] == 60 * 400 and summary["sink"]["kind"] == "none"
    assert_mp2_is_the_local_runs(out, inputs_dir)

    assert main(["job", "status", job_id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "done" and status["day"] == 400 and status["result"]["job_id"] == job_id
    assert status["spec"]["inputs"]["kind"] == "store" and "path" not in json.dumps(status["spec"])
    assert main(["job", "list"]) == 0
    assert job_id in capsys.readouterr().out

    assert main(["checkpoint", "list", job_id, "--json"]) == 0
    refs = json.loads(capsys.readouterr().out)
    kinds = [ref["kind"] for ref in refs]
    assert kinds.count("environment") == 1 and kinds.count("population") == 1 and kinds.count("result") == 3
    assert [ref["day"] for ref in refs if ref["kind"] == "progress"] == [150, 300, 400]
    assert main(["checkpoint", "verify", job_id]) == 0
    assert "8 checkpoint(s), 0 bad" in capsys.readouterr().out  # environment, population, 3 results, 3 progress
    assert main(["checkpoint", "show", job_id, "--index", "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ref"]["kind"] == "environment"
    assert shown["payload"]["tables"]["mp3"]["aircraft_number"].startswith("array int")
    again = tmp_path / "again"
    assert main(["job", "export", job_id, "--out", str(again)]) == 0
    assert "24000 airframe rows and 3 chunk(s)" in capsys.readouterr().out
    assert_mp2_is_the_local_runs(again, inputs_dir)
    assert main(["job", "export", job_id, "--out", str(again)]) == 0  # a rerun replaces the earlier export whole
    capsys.readouterr()
    assert_mp2_is_the_local_runs(again, inputs_dir)
    (again / "notes.txt").write_text("the user's own file")
    assert main(["job", "export", job_id, "--out", str(again)]) == 2  # never over a folder holding other files
    assert "holds notes.txt; it may hold only an earlier output" in capsys.readouterr().err
    assert (again / "notes.txt").exists()
    damaged = fleet.checkpoints().store.root / refs[-1]["key"]  # type: ignore[attr-defined]
    damaged.write_bytes(damaged.read_bytes()[:-3])
    assert main(["checkpoint", "verify", job_id]) == 1
    assert "8 checkpoint(s), 1 bad" in capsys.readouterr().out
    assert main(["job", "delete", job_id]) == 0
    assert "deleted with 8 checkpoint blob(s)" in capsys.readouterr().out
    assert main(["job", "status", job_id]) == 1  # an unknown job is a WorkFailed (JobFailed): exit 1
    assert "not known to this fleet" in capsys.readouterr().err


@pytest.mark.death
def test_the_watchdog_command_hands_a_dead_owners_job_to_the_next_worker(fleet, start_worker, big_inputs, tmp_path,
                                                                          capsys):  # fmt: skip
    victim = start_worker(role="gpu")
    job = fleet.run_lifecycle(inputs=big_inputs, chunk_days=365, sink="none")
    wait_for_stage(fleet, job.id, 3)
    victim.kill()
    wait_until(lambda: not fleet.heartbeats.alive(victim.name), "the heartbeat to expire", timeout_s=10)
    assert main(["watchdog", "--once"]) == 0
    (handover,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert handover["owner"] == victim.name and handover["jobs"] == {job.id: 1} and handover["republished"] == 1
    record = job.record()
    assert record.owner == "" and record.epoch == 1 and record.due_sent
    heir = start_worker(role="gpu")
    summary = job.wait(timeout=240)
    assert summary.worker == heir.name and summary.epoch == 1
    job.export(tmp_path / "out")
    assert_mp2_is_the_local_runs(tmp_path / "out", big_inputs)
