"""The progress line a person watches while a lifecycle job runs."""

from simfleet.producer.fleet.lifecycle import JobProgress


def progress(**fields):
    return JobProgress(**{"job_id": "lc-1", "state": "running", "day": 0, "days": 0, "owner": "", "epoch": 1, **fields})


def test_a_queued_job_shows_its_state_alone_until_load_knows_the_horizon():
    assert progress(state="queued").label == "queued"
    assert progress(state="queued").percent == 0.0


def test_a_running_job_shows_the_stage_s_latest_day_and_speed():
    running = progress(days=3650, day=730, figures={"day": 1095, "days_per_s": 20603.4})
    assert running.label == "running, day 1095/3650, 20,603 days/s"
    assert running.percent == 30.0
