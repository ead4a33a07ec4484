"""The progress line a person watches while a lifecycle job runs."""

from simfleet.producer.fleet.lifecycle import JobProgress
from simfleet.shared.messages.lifecycle import StageProgress


def progress(**fields):
    return JobProgress(**{"job_id": "lc-1", "state": "running", "day": 0, "days": 0, "owner": "", "epoch": 1, **fields})


def figures(day: int, days_per_s: float) -> StageProgress:
    return StageProgress(job_id="lc-1", stage="execute", day=day, days=3650, airframes=279, percent=day / 36.5,
                         days_per_s=days_per_s, rss_mb=100.0, device_memory_mb=None, worker="gpu0@h", pid=1)


def test_a_queued_job_shows_its_state_and_horizon():
    assert progress(state="queued", days=3650).label == "queued, day 0/3650"
    assert progress(state="queued", days=3650).percent == 0.0


def test_a_running_job_shows_the_stage_s_latest_day_and_speed():
    running = progress(days=3650, day=730, figures=figures(1095, 20603.4))
    assert running.label == "running, day 1095/3650, 20,603 days/s"
    assert running.percent == 30.0


def test_a_lost_connection_says_it_is_reconnecting_and_that_the_job_goes_on():
    assert progress(state="reconnecting").label == "the fleet's Redis is unreachable: reconnecting (the job goes on)"
    assert not progress(state="reconnecting").finished
