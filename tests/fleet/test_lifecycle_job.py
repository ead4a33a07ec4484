"""Lifecycle jobs through the fleet: a real Redis, real GPU-role worker processes (running the numpy backend)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from celery import chain

from simfleet.producer.fleet.lifecycle import job_spec
from simfleet.shared.celery_app import LIFECYCLE_CREATE, LIFECYCLE_EXECUTE, LIFECYCLE_EXPORT, LIFECYCLE_LOAD
from simfleet.shared.checkpoints import Checkpoints, DirectoryStore
from simfleet.worker.lifecycle.inputs import load_inputs, write_inputs
from simfleet.worker.lifecycle.run import MemorySink, run_local
from simfleet.worker.lifecycle.synth import synthesize

from .conftest import wait_until


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "inputs"
    write_inputs(synthesize(60, 400, seed=7), path, "parquet")
    return path


def local_mp2(inputs_dir: Path) -> tuple[dict, dict]:
    sink = MemorySink()
    run_local(load_inputs(inputs_dir), sink=sink)
    return sink.table("mp2"), sink.table("mp2_daily")


def read_sink(out: Path, name: str) -> dict:
    files = sorted((out / name).glob("part-*.parquet"))
    table = pq.ParquetDataset(files).read() if files else None
    return {c: table.column(c).to_numpy() for c in table.column_names}


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for column in want:
        np.testing.assert_array_equal(np.asarray(got[column]), np.asarray(want[column]), err_msg=column)


def test_a_job_through_the_fleet_gives_the_local_runs_mp2(fleet, start_worker, inputs_dir, tmp_path):
    worker = start_worker(role="gpu")
    out = tmp_path / "out"
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, out=out)
    seen = []
    summary = job.result(timeout=120, on_progress=seen.append)
    want_airframe, want_daily = local_mp2(inputs_dir)
    assert_same(read_sink(out, "mp2"), want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)
    assert summary["airframes"] == 60 and summary["days"] == 400 and summary["airframe_rows"] == 60 * 400
    assert summary["worker"] == worker.name and summary["restores"] == 0
    assert summary["end_to_end_s"] > 0 and {"load", "create", "run", "export"} <= set(summary["timings_s"])
    record = job.record()
    assert record.state == "done" and record.owner == "" and record.epoch == 0
    assert any(p.figures.get("days_per_s", 0) > 0 for p in seen)


@pytest.fixture
def big_inputs(tmp_path: Path) -> Path:
    path = tmp_path / "big-inputs"
    write_inputs(synthesize(4000, 1095, seed=3), path, "parquet")
    return path


def wait_started(fleet, task_id: str) -> dict:
    """The STARTED/PROGRESS meta of a task (Celery's STARTED meta names the pool process's pid)."""

    def started():
        meta = fleet.app.backend.get_task_meta(task_id)
        return meta if meta.get("status") in ("STARTED", "PROGRESS") else None

    return wait_until(started, f"task {task_id} to start", timeout_s=120, interval_s=0.01)


def test_killing_the_owners_pool_process_mid_execute_resumes_from_the_checkpoint(
    fleet, start_worker, big_inputs, tmp_path
):
    worker = start_worker(role="gpu")
    out = tmp_path / "out"
    job = fleet.run_lifecycle(inputs=big_inputs, chunk_days=365, out=out)
    meta = wait_started(fleet, f"{job.id}-run-1")
    os.kill(meta["result"]["pid"], signal.SIGKILL)
    summary = job.result(timeout=240)
    assert summary["restores"] >= 1 and summary["epoch"] == 0  # restored by the same worker: nobody to fence off
    log = worker.log.read_text()
    assert "WorkerLostError" in log and f"job {job.id} restored at day 365" in log
    want_airframe, want_daily = local_mp2(big_inputs)
    got = read_sink(out, "mp2")
    assert len(got["day"]) == 4000 * 1095  # every (day, airframe) once
    assert_same(got, want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)


def test_killing_the_whole_owner_lets_a_second_worker_finish(fleet, start_worker, big_inputs, tmp_path):
    first = start_worker(role="gpu")
    second = start_worker(role="gpu")
    out = tmp_path / "out"
    job = fleet.run_lifecycle(inputs=big_inputs, chunk_days=365, out=out)
    wait_started(fleet, f"{job.id}-run-1")
    owner = job.record().owner
    victim, survivor = (first, second) if owner == first.name else (second, first)
    assert owner == victim.name
    os.killpg(victim.process.pid, signal.SIGKILL)
    summary = job.result(timeout=240)
    assert summary["worker"] == survivor.name and summary["restores"] >= 1
    lines = [json.loads(line) for line in survivor.log.read_text().splitlines() if line.startswith("{")]
    assert any(f"worker {victim.name} is silent" in line["message"] for line in lines)
    want_airframe, want_daily = local_mp2(big_inputs)
    assert_same(read_sink(out, "mp2"), want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)


def stage_chain(fleet, spec: dict, ends: list[int], *, load: bool = True, export: bool = False):
    """Some of a job's stages, as the producer would chain them (for tests that stop a job half way)."""
    job_id = spec["job_id"]
    app = fleet.app
    steps = []
    if load:
        steps += [
            app.signature(LIFECYCLE_LOAD, args=(spec,), kwargs={"job_id": job_id}).set(task_id=f"{job_id}-load"),
            app.signature(LIFECYCLE_CREATE, kwargs={"job_id": job_id}).set(task_id=f"{job_id}-create"),
        ]
    steps += [
        app.signature(LIFECYCLE_EXECUTE, kwargs={"job_id": job_id, "until": end}).set(task_id=f"{job_id}-run-{end}")
        for end in ends
    ]
    if export:
        steps.append(app.signature(LIFECYCLE_EXPORT, kwargs={"job_id": job_id}).set(task_id=job_id))
    return chain(*steps)


def checkpoints_of(fleet, settings) -> Checkpoints:
    return Checkpoints(fleet.redis, DirectoryStore(settings.stores.checkpoint_dir))


def test_a_stage_with_a_stale_epoch_is_refused(fleet, start_worker, inputs_dir, fleet_settings, tmp_path):
    worker = start_worker(role="gpu")
    out = tmp_path / "out"
    spec = job_spec("fenced-job", inputs_dir, days=None, chunk_days=200, persistent=True, out=out, sink=None,
                    backend=None, log="full")  # fmt: skip
    fleet.jobs.create("fenced-job", spec, task_ids=["fenced-job"])
    stage_chain(fleet, spec, [200]).apply_async()
    wait_until(lambda: fleet.app.backend.get_task_meta("fenced-job-run-200")["status"] == "SUCCESS", "day 200")
    old_handoff = fleet.app.backend.get_task_meta("fenced-job-run-200")["result"]
    # The owner is declared dead (what the watchdog does): the epoch moves on, so its messages are stale.
    assert fleet.jobs.release("fenced-job", worker.name) == old_handoff["epoch"] + 1
    refs_before = checkpoints_of(fleet, fleet_settings).refs("fenced-job")
    stale = fleet.app.signature(LIFECYCLE_EXECUTE, args=(old_handoff,),
                                kwargs={"job_id": "fenced-job", "until": 400}).set(task_id="stale-stage")  # fmt: skip
    stale.apply_async()
    meta = wait_until(
        lambda: (m := fleet.app.backend.get_task_meta("stale-stage"))["status"] == "REJECTED" and m, "a refusal"
    )
    assert "carries epoch 0, the job is at epoch 1" in meta["result"]["reason"]
    assert checkpoints_of(fleet, fleet_settings).refs("fenced-job") == refs_before
    assert fleet.job("fenced-job").record().day == 200
    assert "refused: job fenced-job" in worker.log.read_text()
    # The message with the current epoch carries on: restored from the day-200 checkpoint, exported whole.
    current = {**old_handoff, "epoch": 1}
    stage_chain(fleet, spec, [400], load=False, export=True).apply_async(args=(current,))
    summary = fleet.job("fenced-job").result(timeout=120)
    assert summary["epoch"] == 1 and summary["restores"] == 1
    assert_same(read_sink(out, "mp2"), local_mp2(inputs_dir)[0])


def test_a_corrupted_latest_checkpoint_falls_back_to_the_previous_one(
    fleet, start_worker, inputs_dir, fleet_settings, tmp_path
):
    worker = start_worker(role="gpu")
    out = tmp_path / "out"
    spec = job_spec("corrupt-job", inputs_dir, days=None, chunk_days=100, persistent=False, out=out, sink=None,
                    backend=None, log="full")  # fmt: skip
    fleet.jobs.create(spec["job_id"], spec, task_ids=[spec["job_id"]])
    stage_chain(fleet, spec, [200, 300]).apply_async()
    wait_until(lambda: fleet.app.backend.get_task_meta("corrupt-job-run-300")["status"] == "SUCCESS", "day 300")
    store = checkpoints_of(fleet, fleet_settings)
    latest = [ref for ref in store.refs("corrupt-job") if ref.kind == "progress"][-1]
    assert latest.day == 300
    path = DirectoryStore.path(latest.uri)
    damaged = bytearray(path.read_bytes())
    damaged[-10] ^= 0xFF
    path.write_bytes(bytes(damaged))
    handoff = fleet.app.backend.get_task_meta("corrupt-job-run-300")["result"]
    rest = stage_chain(fleet, spec, [400], load=False, export=True)
    rest.apply_async(args=(handoff,))
    summary = fleet.job("corrupt-job").result(timeout=120)
    assert summary["airframe_rows"] == 60 * 400
    log = worker.log.read_text()
    assert "skipping progress checkpoint of day 300" in log and "sha256 mismatch" in log
    assert "restored at day 200" in log
    want_airframe, want_daily = local_mp2(inputs_dir)
    assert_same(read_sink(out, "mp2"), want_airframe)
    assert_same(read_sink(out, "mp2_daily"), want_daily)


def test_two_jobs_on_two_workers_at_once_never_mix(fleet, start_worker, tmp_path):
    first, second = start_worker(role="gpu"), start_worker(role="gpu")
    dirs = []
    for seed, n in ((11, 50), (12, 70)):
        path = tmp_path / f"inputs-{seed}"
        write_inputs(synthesize(n, 500, seed=seed), path, "csv")
        dirs.append(path)
    jobs = [fleet.run_lifecycle(inputs=d, chunk_days=50, out=tmp_path / f"out-{i}") for i, d in enumerate(dirs)]
    summaries = [job.result(timeout=180) for job in jobs]
    assert {s["worker"] for s in summaries} <= {first.name, second.name}
    check_mp2(dirs, tmp_path)


def check_mp2(dirs: list[Path], tmp_path: Path) -> None:
    for i, path in enumerate(dirs):
        want_airframe, want_daily = local_mp2(path)
        assert_same(read_sink(tmp_path / f"out-{i}", "mp2"), want_airframe)
        assert_same(read_sink(tmp_path / f"out-{i}", "mp2_daily"), want_daily)


def test_a_worker_over_its_memory_budget_evicts_and_restores_jobs_without_mixing_them(fleet, start_worker, tmp_path):
    worker = start_worker(role="gpu", SIMFLEET_GPU_WORKER__MEMORY_BUDGET_MB="1")
    dirs = []
    for seed in (21, 22, 23):
        path = tmp_path / f"inputs-{seed}"
        write_inputs(synthesize(2000, 300, seed=seed), path, "parquet")
        dirs.append(path)
    jobs = [fleet.run_lifecycle(inputs=d, chunk_days=30, out=tmp_path / f"out-{i}") for i, d in enumerate(dirs)]
    summaries = [job.result(timeout=300) for job in jobs]
    assert "dropped from memory" in worker.log.read_text()
    assert sum(s["restores"] for s in summaries) >= 1
    check_mp2(dirs, tmp_path)


def test_invalid_inputs_fail_at_load_and_leave_no_owner_or_checkpoint(
    fleet, start_worker, inputs_dir, fleet_settings
):
    start_worker(role="gpu")
    mp3 = pq.read_table(inputs_dir / "mp3.parquet").to_pydict()
    mp3["sne"][3] = -5
    import pyarrow as pa

    pq.write_table(pa.table(mp3), inputs_dir / "mp3.parquet")
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100)
    with pytest.raises(Exception, match="mp3") as failure:
        job.result(timeout=60)
    assert "sne" in str(failure.value)
    record = job.record()
    assert record.state == "failed" and record.owner == "" and record.epoch == 0
    assert checkpoints_of(fleet, fleet_settings).refs(job.id) == []
    assert not (Path(fleet_settings.stores.checkpoint_dir) / job.id).exists()


def test_the_command_line_submits_follows_and_inspects_a_job(fleet, start_worker, inputs_dir, tmp_path, capsys):
    from simfleet.producer.cli import main

    start_worker(role="gpu")
    out = tmp_path / "cli-out"
    assert main(["lifecycle", "submit", "--inputs", str(inputs_dir), "--chunk-days", "150", "--out", str(out),
                 "--fleet", "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    job_id = summary["job_id"]
    assert "100.0%" in captured.err and summary["airframe_rows"] == 60 * 400
    assert_same(read_sink(out, "mp2"), local_mp2(inputs_dir)[0])

    assert main(["job", "status", job_id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "done" and status["day"] == 400 and status["result"]["job_id"] == job_id

    assert main(["checkpoint", "list", job_id, "--json"]) == 0
    refs = json.loads(capsys.readouterr().out)
    kinds = [ref["kind"] for ref in refs]
    assert kinds.count("environment") == 1 and kinds.count("population") == 1 and kinds.count("result") == 3
    assert [ref["day"] for ref in refs if ref["kind"] == "progress"] == [150, 300, 400]
    assert main(["checkpoint", "verify", job_id]) == 0
    assert "8 checkpoint(s), 0 bad" in capsys.readouterr().out  # environment, population, 3 results, 3 progress
    assert main(["checkpoint", "show", job_id, "--index", "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ref"]["kind"] == "environment" and shown["payload"]["tables"]["mp3"]["aircraft_number"].startswith(
        "array int"
    )
    again = tmp_path / "again"
    assert main(["job", "export", job_id, "--out", str(again)]) == 0
    assert "24000 airframe rows and 3 chunk(s)" in capsys.readouterr().out
    assert_same(read_sink(again, "mp2"), read_sink(out, "mp2"))
    damaged = DirectoryStore.path(refs[-1]["uri"])
    damaged.write_bytes(damaged.read_bytes()[:-3])
    assert main(["checkpoint", "verify", job_id]) == 1
    assert "8 checkpoint(s), 1 bad" in capsys.readouterr().out


def test_the_watchdog_command_hands_a_dead_owners_job_to_the_next_worker(fleet, start_worker, big_inputs, tmp_path,
                                                                          capsys):  # fmt: skip
    from simfleet.producer.cli import main

    victim = start_worker(role="gpu")
    out = tmp_path / "out"
    job = fleet.run_lifecycle(inputs=big_inputs, chunk_days=365, out=out)
    wait_started(fleet, f"{job.id}-run-1")
    os.killpg(victim.process.pid, signal.SIGKILL)
    wait_until(lambda: not fleet.jobs.alive(victim.name), "the heartbeat to expire", timeout_s=10)
    assert main(["watchdog", "--once"]) == 0
    (handover,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert handover["owner"] == victim.name and handover["jobs"] == {job.id: 1} and handover["moved"] >= 1
    record = job.record()
    assert record.owner == "" and record.epoch == 1
    heir = start_worker(role="gpu")
    summary = job.result(timeout=240)
    assert summary["worker"] == heir.name and summary["epoch"] == 1
    assert_same(read_sink(out, "mp2"), local_mp2(big_inputs)[0])
