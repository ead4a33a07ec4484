"""Job records on a real Redis: atomic creation, claims, fenced advances, fenced failure, cancel, release."""

from __future__ import annotations

import threading

import pytest

from simfleet.shared.errors import MessageError, StaleOwner
from simfleet.shared.heartbeats import Heartbeats
from simfleet.shared.jobs import JOB_KEY, Jobs
from simfleet.shared.messages.lifecycle import JobFailure, JobSpec, StageMessage, StoreInputs


@pytest.fixture
def jobs(redis_server):
    client = redis_server.client(1)
    yield Jobs(client)
    client.close()


def spec(job_id: str = "job-1", days: int = 300, chunk_days: int = 100) -> JobSpec:
    return JobSpec(job_id=job_id, inputs=StoreInputs(key=f"{job_id}/in", sha256="0" * 64), days=days,
                   chunk_days=chunk_days)  # fmt: skip


def test_a_job_id_is_taken_once_even_by_producers_racing_for_it(redis_server):
    wins, losses = [], []
    barrier = threading.Barrier(8)

    def create() -> None:
        client = redis_server.client(1)
        barrier.wait()
        try:
            Jobs(client).create(spec("contested"))
            wins.append(1)
        except ValueError:
            losses.append(1)
        client.close()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(wins), len(losses)) == (1, 7)


def test_a_new_job_is_queued_with_its_load_stage_due_and_unsent(jobs):
    first = jobs.create(spec())
    record = jobs.get("job-1")
    assert first == StageMessage(job_id="job-1", epoch=0, seq=0, stage="load")
    assert record.state == "queued" and record.due == first and not record.due_sent and record.days == 300
    jobs.mark_sent("job-1", 0, 0)
    assert jobs.get("job-1").due_sent
    assert jobs.active() == ["job-1"] and jobs.listed() == ["job-1"]


def test_stages_advance_only_from_the_due_stage_at_the_current_epoch(jobs):
    jobs.create(spec())
    jobs.claim("job-1", "w1", "q1", epoch=0, seq=0)
    create = StageMessage(job_id="job-1", epoch=0, seq=1, stage="create")
    jobs.advance("job-1", 0, 0, create, state="loaded")
    with pytest.raises(StaleOwner, match="no longer current"):
        jobs.advance("job-1", 0, 0, create, state="loaded")  # a duplicate of stage 0
    record = jobs.get("job-1")
    assert (record.seq, record.state, record.due, record.due_sent) == (1, "loaded", create, False)


def test_a_job_held_by_a_live_worker_is_never_claimed_by_another(jobs, redis_server):
    jobs.create(spec())
    heartbeats = Heartbeats(jobs.redis)
    heartbeats.beat("w1", 30)
    jobs.claim("job-1", "w1", "q1", epoch=0, seq=0)
    jobs.claim("job-1", "w1", "q1", epoch=0, seq=0)  # the same worker again (a restarted pool process)
    with pytest.raises(StaleOwner, match="another live worker holds it"):
        jobs.claim("job-1", "w2", "q2", epoch=0, seq=0)
    heartbeats.stop("w1")
    with pytest.raises(StaleOwner, match="the watchdog will hand it on"):
        jobs.claim("job-1", "w2", "q2", epoch=0, seq=0)
    assert jobs.release("job-1", "w1") == 1
    assert jobs.release("job-1", "w1") == -1  # released once
    jobs.claim("job-1", "w2", "q2", epoch=1, seq=0)
    assert jobs.get("job-1").owner == "w2"


def test_a_stale_owner_cannot_fail_or_finish_a_job_that_moved_on(jobs):
    jobs.create(spec())
    jobs.claim("job-1", "w1", "q1", epoch=0, seq=0)
    jobs.release("job-1", "w1")
    assert not jobs.fail("job-1", 0, JobFailure(stage="lifecycle.execute", error_type="OSError", message="disk"))
    record = jobs.get("job-1")
    assert record.state == "queued" and record.failure is None and jobs.active() == ["job-1"]
    assert jobs.fail("job-1", 1, JobFailure(stage="lifecycle.load", error_type="InputError", message="mp3"))
    record = jobs.get("job-1")
    assert record.state == "failed" and record.failure.error_type == "InputError" and jobs.active() == []
    assert not jobs.fail("job-1", 1, JobFailure(stage="x", error_type="y", message="twice"))


def test_a_cancel_ends_the_job_and_fences_its_owner_off(jobs):
    jobs.create(spec())
    jobs.claim("job-1", "w1", "q1", epoch=0, seq=0)
    assert jobs.cancel("job-1", "not needed")
    record = jobs.get("job-1")
    assert record.state == "cancelled" and record.epoch == 1 and record.owner == ""
    assert record.failure.error_type == "Cancelled" and record.failure.message == "not needed"
    with pytest.raises(StaleOwner):
        jobs.update("job-1", 0, state="running")
    assert not jobs.cancel("job-1")
    assert jobs.delete("job-1") and jobs.get("job-1") is None and jobs.listed() == []


def test_a_running_job_cannot_be_deleted(jobs):
    jobs.create(spec())
    with pytest.raises(ValueError, match="cancel it before"):
        jobs.delete("job-1")


def test_a_record_that_does_not_hold_a_job_spec_is_a_message_error_naming_the_field(jobs):
    jobs.create(spec())
    jobs.redis.hset(JOB_KEY.format("job-1"), "spec", '{"job_id": "job-1", "days": "many"}')
    with pytest.raises(MessageError, match=r"job job-1 record field spec"):
        jobs.get("job-1")


def test_stage_positions_cover_load_create_every_chunk_and_export():
    job = spec(days=250, chunk_days=100)
    assert [job.stage_of(seq) for seq in range(job.stages)] == [
        ("load", 0), ("create", 0), ("execute", 100), ("execute", 200), ("execute", 250), ("export", 0),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no stage 6"):
        job.stage_of(6)


def test_job_status_and_list_give_one_day_and_the_checkpointed_day_beside_it(fleet_settings, jobs, capsys):
    import json

    from simfleet.producer.cli import main
    from simfleet.shared.messages.lifecycle import StageProgress

    def shown(*command: str):
        assert main([*command, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    jobs.create(spec("lc-days", days=3650, chunk_days=365))
    jobs.claim("lc-days", "gpu-a", "simfleet.worker.gpu-a", epoch=0, seq=0)
    running = StageProgress(job_id="lc-days", stage="execute", day=500, days=3650, airframes=279, percent=13.7,
                            days_per_s=2e4, rss_mb=100.0, device_memory_mb=None, worker="gpu-a", pid=1)  # fmt: skip
    jobs.update("lc-days", 0, state="running", day=365, progress=running)  # mid-chunk: checkpointed at 365, at 500
    status = shown("job", "status", "lc-days")
    assert (status["day"], status["progress"]["day"], status["checkpointed_day"]) == (500, 500, 365)
    assert status["percent"] == pytest.approx(100 * 500 / 3650)
    (listed,) = shown("job", "list")
    assert (listed["day"], listed["checkpointed_day"]) == (500, 365)
    assert main(["job", "status", "lc-days"]) == 0
    assert "day 500/3650 (13.7%), checkpointed day 365, epoch 0, owner gpu-a" in capsys.readouterr().out

    # The owner died: the next one resumes from the checkpoint, so the dead owner's day 500 is no longer the job's.
    assert jobs.release("lc-days", "gpu-a") == 1
    status = shown("job", "status", "lc-days")
    assert (status["day"], status["checkpointed_day"], status["progress"]) == (365, 365, None)
    assert status["percent"] == pytest.approx(100 * 365 / 3650)
