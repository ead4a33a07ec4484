"""The stages of a lifecycle job run one by one in this process, against a real Redis, store and chDB.

Without a Celery worker in between, a test decides exactly when each stage runs, so it can damage a checkpoint,
crash a stage between recording and publishing, or send a stale copy at a chosen moment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import StaleEpoch, StaleOwner
from simfleet.shared.jobs import Jobs
from simfleet.shared.messages.lifecycle import JobSummary, StageMessage, StageProgress
from simfleet.shared.redis_client import connect
from simfleet.worker.sessions import SessionRegistry
from simfleet.worker.stages import Stages

from .lifecycle_helpers import assert_mp2_is_the_local_runs, local_mp2, make_inputs


class Crash(Exception):
    """A stand-in for a process dying at that point."""


class Harness:
    """One worker's stage runner, with its publications recorded instead of sent."""

    def __init__(self, fleet, node: str = "gpu-a") -> None:
        self.fleet = fleet
        self.client = connect(fleet.settings.result_backend)
        self.published: list[StageMessage] = []
        self.crash_on_publish = False
        self.stages = Stages(node, f"simfleet.worker.{node}", Jobs(self.client),
                             Checkpoints.from_settings(fleet.settings, self.client), SessionRegistry(2**30),
                             self.publish, clickhouse_dsn=fleet.settings.clickhouse_dsn)  # fmt: skip

    def publish(self, message: StageMessage, queue: str, priority: str) -> None:
        if self.crash_on_publish:
            self.crash_on_publish = False
            raise Crash()
        self.published.append(message)

    def due(self, job_id: str) -> StageMessage:
        record = self.stages.jobs.get(job_id)
        assert record is not None and record.due is not None
        return msgspec.structs.replace(record.due, epoch=record.epoch)

    def run_to(self, job_id: str, seq: int) -> None:
        """Run the job's due stages until stage ``seq`` is due."""
        while self.stages.jobs.get(job_id).seq < seq:
            self.stages.run(self.due(job_id))

    def finish(self, job_id: str) -> JobSummary:
        while True:
            outcome = self.stages.run(self.due(job_id))
            if isinstance(outcome, JobSummary):
                return outcome


@pytest.fixture
def harness(fleet) -> Iterator[Harness]:
    made = Harness(fleet)
    yield made
    made.client.close()


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    return make_inputs(tmp_path / "inputs", 60, 400, seed=7)


def test_a_corrupted_result_chunk_is_computed_again_at_export(fleet, harness, inputs_dir, caplog):
    from simfleet.shared.clickhouse.client import ClickHouse

    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100)  # MP2 to ClickHouse
    harness.run_to(job.id, 6)  # every execute done, export due
    checkpoints = harness.stages.checkpoints
    lost = [ref for ref in checkpoints.refs(job.id) if ref.kind == "result"][1]
    checkpoints.store.put(lost.key, b"not a checkpoint")
    caplog.set_level(logging.INFO)
    summary = harness.finish(job.id)
    assert summary.airframe_rows == 60 * 400 and summary.sink.kind == "clickhouse"
    assert "result chunk of days 100..199 unreadable" in caplog.text and "computed again from day" in caplog.text
    want_airframe = local_mp2(inputs_dir)[0]
    with ClickHouse(fleet.settings.clickhouse_dsn) as ch:
        got = ch.rows(f"SELECT day, idx, sne, ppr, status_id FROM {ch.database}.mp2 WHERE job_id = '{job.id}' "
                      "ORDER BY day, idx")  # fmt: skip
    assert len(got) == 60 * 400
    assert [row[2] for row in got] == list(want_airframe["sne"]) and [row[4] for row in got] == list(
        want_airframe["status_id"]
    )
    job.export(inputs_dir.parent / "out")  # the chunk computed again was saved: the checkpoints are whole again
    assert_mp2_is_the_local_runs(inputs_dir.parent / "out", inputs_dir)


def test_a_corrupted_latest_progress_checkpoint_falls_back_to_the_previous_one(fleet, harness, inputs_dir, caplog):
    harness.stages.checkpoints.keep = 5
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none", persistent=False)
    harness.run_to(job.id, 5)  # the chunk to day 300 is done
    checkpoints = harness.stages.checkpoints
    latest = [ref for ref in checkpoints.refs(job.id) if ref.kind == "progress"][-1]
    assert latest.day == 300
    blob = bytearray(checkpoints.store.get(latest.key))
    blob[-10] ^= 0xFF
    checkpoints.store.put(latest.key, bytes(blob))
    caplog.set_level(logging.INFO)
    summary = harness.finish(job.id)
    assert summary.restores >= 3 and summary.airframe_rows == 60 * 400
    assert "skipping progress checkpoint of day 300" in caplog.text and "sha256 mismatch" in caplog.text
    assert f"job {job.id} restored at day 200" in caplog.text
    job.export(inputs_dir.parent / "out")
    assert_mp2_is_the_local_runs(inputs_dir.parent / "out", inputs_dir)


def test_a_stage_that_died_between_recording_and_publishing_publishes_the_next_one_when_redelivered(
    fleet, harness, inputs_dir
):
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none")
    load = harness.due(job.id)
    harness.crash_on_publish = True
    with pytest.raises(Crash):
        harness.stages.run(load)  # recorded the create stage as due, then "died" before publishing it
    record = job.record()
    assert record.seq == 1 and not record.due_sent and harness.published == []
    with pytest.raises(StaleEpoch, match="not due"):
        harness.stages.run(load)  # the redelivered load: refused, but it publishes what its first run could not
    assert [m.stage for m in harness.published] == ["create"] and job.record().due_sent
    with pytest.raises(StaleEpoch, match="not due"):
        harness.stages.run(load)  # once published, a further copy publishes nothing more
    assert len(harness.published) == 1
    assert harness.finish(job.id).airframe_rows == 60 * 400


def test_stale_future_and_mismatched_messages_are_refused_without_touching_the_job(fleet, harness, inputs_dir):
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none")
    harness.run_to(job.id, 3)
    before = job.record()
    due = harness.due(job.id)
    for wrong, reason in (
        (msgspec.structs.replace(due, epoch=due.epoch + 5), "ahead of the job's epoch"),
        (msgspec.structs.replace(due, seq=due.seq - 1, stage="execute", until=100), "not due"),
        (msgspec.structs.replace(due, until=999), "the message says execute to day 999"),
        (msgspec.structs.replace(due, job_id="no-such-job"), "not known to this fleet"),
    ):
        with pytest.raises(StaleEpoch, match=reason):
            harness.stages.run(wrong)
    after = job.record()
    assert (after.state, after.epoch, after.seq, after.day, after.failure) == (
        before.state, before.epoch, before.seq, before.day, None,
    )  # fmt: skip
    assert harness.finish(job.id).epoch == 0


def test_a_cancelled_job_stops_at_its_owners_next_write(fleet, harness, inputs_dir):
    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none")
    harness.run_to(job.id, 3)
    due = harness.due(job.id)
    assert job.cancel("no longer needed")
    with pytest.raises(StaleOwner):
        harness.stages.run(due)
    record = job.record()
    assert record.state == "cancelled" and record.day == 100 and record.owner == ""
    with pytest.raises(Exception, match="no longer needed") as stopped:
        job.wait(timeout=5)
    assert stopped.value.cancelled and stopped.value.error_type == "Cancelled"


def test_checkpoint_prune_drops_the_checkpoints_of_ended_jobs_past_their_retention(fleet, harness, inputs_dir,
                                                                                   capsys):  # fmt: skip
    import json

    from simfleet.producer.cli import main

    ended = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=200, sink="none")
    harness.finish(ended.id)
    running = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=200, sink="none")
    store = fleet.checkpoints().store
    assert main(["checkpoint", "prune", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == []  # a week has not passed
    assert main(["checkpoint", "prune", "--older-than", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == [ended.id]
    assert fleet.checkpoints().refs(ended.id) == [] and store.keys(f"{ended.id}/") == []
    assert store.keys(f"{running.id}/")  # a job that has not ended keeps its inputs blob


def test_a_stale_owner_that_raises_cannot_fail_the_job_its_successor_finishes(fleet, harness, inputs_dir):
    from simfleet.worker.tasks.lifecycle import _fail

    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none")
    harness.run_to(job.id, 3)
    stale = harness.due(job.id)
    assert fleet.records.release(job.id, "gpu-a") == 1  # the watchdog took the job from the silent owner
    _fail(harness.stages, stale, "lifecycle.execute", OSError("disk gone"))  # the old owner's stage then raised
    record = job.record()
    assert record.state != "failed" and record.failure is None and record.epoch == 1
    successor = Harness(fleet, node="gpu-b")
    try:
        summary = successor.finish(job.id)
    finally:
        successor.client.close()
    assert summary.worker == "gpu-b" and summary.epoch == 1 and job.record().state == "done"


def test_a_horizon_the_workers_memory_cannot_hold_fails_at_load_naming_days(fleet, harness, inputs_dir, monkeypatch):
    from simfleet.shared.errors import ConfigError
    from simfleet.worker.lifecycle import environment
    from simfleet.worker.tasks.lifecycle import _fail

    job = fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100, sink="none")
    monkeypatch.setattr(environment, "available_memory_bytes", lambda: 20_000)
    load = harness.due(job.id)
    with pytest.raises(ConfigError, match=r"days: 60 airframes x 400 days needs about .* at most \d+ days fit") as err:
        harness.stages.run(load)
    assert not any(ref.kind == "environment" for ref in harness.stages.checkpoints.refs(job.id))
    _fail(harness.stages, load, "lifecycle.load", err.value)
    record = job.record()
    assert record.state == "failed" and record.failure is not None and "at most" in record.failure.message


def test_execute_reports_its_day_and_export_the_days_written_at_most_once_per_progress_interval(
    fleet, harness, inputs_dir
):
    def run_reporting(job_id: str, interval_s: float) -> list[StageProgress]:
        harness.stages.progress_interval_s = interval_s
        reports: list[StageProgress] = []
        while not isinstance(harness.stages.run(harness.due(job_id), reports.append), JobSummary):
            pass
        return reports

    every = run_reporting(fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100).id, 0.0)  # MP2 to ClickHouse
    executed = [r.day for r in every if r.stage == "execute"]
    assert executed == sorted(set(executed)) and {100, 200, 300, 400} <= set(executed)
    assert [r.day for r in every if r.stage == "export"] == [100, 200, 300]  # the days the sink has taken
    assert all(r.days == 400 and r.airframes == 60 and 0 < r.percent <= 100 for r in every)
    assert run_reporting(fleet.run_lifecycle(inputs=inputs_dir, chunk_days=100).id, 3600.0) == []
