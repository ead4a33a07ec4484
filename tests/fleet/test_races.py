"""Failover races with real worker processes: a cut-off owner that keeps consuming, duplicates, stray messages.

These are the races the watchdog's old way (moving messages inside kombu's lists) lost: here recovery is always a
new publication from the job's record, fenced by the epoch, and a copy that arrives later is refused.
"""

from __future__ import annotations

import signal
import time

import msgspec
import pytest

from simfleet.shared.celery_app import LIFECYCLE_CREATE, LIFECYCLE_EXECUTE
from simfleet.shared.messages import to_wire
from simfleet.shared.messages.lifecycle import StageMessage

from .conftest import wait_until
from .lifecycle_helpers import assert_mp2_is_the_local_runs, make_inputs, send_stage, wait_for_stage


@pytest.mark.death
def test_an_owner_paused_while_the_watchdog_hands_its_job_on_cannot_write_when_it_wakes(
    fleet, start_worker, tmp_path
):
    inputs = make_inputs(tmp_path / "inputs", 6000, 1095, seed=3)
    often = {"SIMFLEET_GPU_WORKER__PROGRESS_INTERVAL_S": "0.02"}  # a report every 20 ms: the test sees the stage early
    first, second = start_worker(role="gpu", **often), start_worker(role="gpu", **often)
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=1095, sink="none")  # one execute stage of about half a second
    wait_until(lambda: (r := job.record()).started == "0:2" and r.progress is not None and r.progress.day < 400,
               "the execute stage's first third", timeout_s=120, interval_s=0.005)  # fmt: skip
    owner = job.record().owner
    paused, other = (first, second) if owner == first.name else (second, first)
    paused.signal(signal.SIGSTOP)  # cut off mid-stage: alive, holding its message, but silent
    wait_until(lambda: job.record().epoch == 1, "the watchdog to take the job from the silent owner", timeout_s=30)
    handed_on = time.time()
    paused.signal(signal.SIGCONT)  # it wakes up mid-stage, with the old epoch, and keeps consuming its queue
    summary = job.wait(timeout=240)
    assert summary.worker == other.name and summary.epoch == 1 and summary.restores == 1
    stale = [ref for ref in fleet.checkpoints().refs(job.id) if ref.epoch == 0 and ref.created > handed_on]
    assert stale == []  # nothing the woken owner wrote after the handover was published
    wait_until(lambda: any(f"refused: job {job.id}" in line for line in paused.lines()), "the woken owner's refusal",
               timeout_s=60)  # fmt: skip
    job.export(tmp_path / "out")
    assert_mp2_is_the_local_runs(tmp_path / "out", inputs)


def test_a_duplicate_stage_message_is_refused_and_runs_nothing_twice(fleet, start_worker, tmp_path):
    worker = start_worker(role="gpu")
    inputs = make_inputs(tmp_path / "inputs", 60, 400, seed=7)
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=100, sink="none")
    job.wait(timeout=60)
    refs_before = fleet.checkpoints().refs(job.id)
    send_stage(fleet, StageMessage(job_id=job.id, epoch=0, seq=2, stage="execute", until=100))
    wait_until(lambda: any(f"job {job.id} has ended" in line for line in worker.lines()), "the refusal")
    assert fleet.checkpoints().refs(job.id) == refs_before and job.record().state == "done"


def test_malformed_and_future_stage_messages_never_fail_a_live_or_finished_job(fleet, start_worker, tmp_path):
    worker = start_worker(role="gpu")
    inputs = make_inputs(tmp_path / "inputs", 200, 1500, seed=4)
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=100, sink="none")
    wait_for_stage(fleet, job.id, 3)
    due = job.record().due
    assert due is not None
    fleet.app.send_task(LIFECYCLE_EXECUTE, args=({"job_id": job.id, "epoch": "zero"},), kwargs={"job_id": job.id})
    fleet.app.send_task(LIFECYCLE_CREATE, args=(to_wire(msgspec.structs.replace(due, epoch=7)),))
    fleet.app.send_task(LIFECYCLE_EXECUTE, args=(to_wire(msgspec.structs.replace(due, epoch=7)),))
    summary = job.wait(timeout=120)
    assert summary.epoch == 0 and job.record().state == "done"
    lines = "\n".join(worker.lines())
    assert "rejected a malformed message: lifecycle.execute message: Expected `int`, got `str` (at $.epoch)" in lines
    assert "a execute stage sent to the create task" in lines
    fleet.app.send_task(LIFECYCLE_EXECUTE, args=(to_wire(msgspec.structs.replace(due, epoch=7)),))
    wait_until(lambda: f"job {job.id} has ended (done)" in "\n".join(worker.lines()), "the late message's refusal")
    assert job.record().state == "done" and job.record().failure is None
    records = [key for key in fleet.redis.keys("simfleet:job:*") if not key.endswith(b":checkpoints")]
    assert records == [f"simfleet:job:{job.id}".encode()]  # the stray messages made no record of their own
    meta = fleet.task_meta(f"{job.id}-2-e0")
    assert meta["status"] == "SUCCESS" and "args" not in meta and "kwargs" not in meta  # results keep no arguments


def test_a_job_whose_first_stage_was_never_published_is_published_by_the_watchdog(fleet, start_worker, tmp_path):
    from simfleet.producer.fleet.lifecycle import resolve_inputs
    from simfleet.shared.messages.lifecycle import JobSpec

    inputs = make_inputs(tmp_path / "inputs", 40, 200, seed=2)
    source, days = resolve_inputs(fleet, "orphan", inputs, days=None, via="store")
    fleet.records.create(JobSpec(job_id="orphan", inputs=source, days=days, chunk_days=100))  # the producer died here
    worker = start_worker(role="gpu")
    summary = fleet.job("orphan").wait(timeout=60)
    assert summary.airframe_rows == 40 * 200 and summary.worker == worker.name


@pytest.mark.death
def test_a_gpu_worker_killed_while_loading_hands_the_job_on_within_seconds(fleet, start_worker, tmp_path):
    inputs = make_inputs(tmp_path / "inputs", 20_000, 730, seed=6)
    victim = start_worker(role="gpu")
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=365, sink="none", log="aggregates")
    wait_until(lambda: (r := job.record()).state == "loading" and r.owner == victim.name, "the load to start",
               timeout_s=60, interval_s=0.005)  # fmt: skip
    victim.kill()
    killed = time.monotonic()
    heir = start_worker(role="gpu")
    wait_until(lambda: job.record().owner == heir.name, "the job to be handed on", timeout_s=60)
    handed_on_s = time.monotonic() - killed
    summary = job.wait(timeout=120)
    assert summary.worker == heir.name and summary.epoch == 1
    assert handed_on_s < 20, f"handed on after {handed_on_s:.1f} s"


def test_a_stage_lost_in_flight_is_published_again_by_the_watchdog(fleet, start_worker, tmp_path):
    from simfleet.producer.fleet.lifecycle import resolve_inputs
    from simfleet.shared.messages.lifecycle import JobSpec

    inputs = make_inputs(tmp_path / "inputs", 40, 200, seed=2)
    source, days = resolve_inputs(fleet, "lost", inputs, days=None, via="store")
    first = fleet.records.create(JobSpec(job_id="lost", inputs=source, days=days, chunk_days=100))
    fleet.records.mark_sent("lost", first.epoch, first.seq)  # recorded as published, but no queue holds it
    worker = start_worker(role="gpu")
    summary = fleet.job("lost").wait(timeout=60)
    assert summary.airframe_rows == 40 * 200
    assert any("job lost: stage 0 (load) was published but is in no queue" in line for line in worker.lines())
