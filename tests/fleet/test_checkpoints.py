"""The checkpoint format, the references in Redis (a real Redis server), and their blobs in every kind of store.

The ``checkpoints`` fixture runs on each store in turn (a directory, memory, an S3 bucket on moto's server, a table
in chDB): atomic publication, checksums, falling back to the previous checkpoint, pruning and retention behave the
same on all of them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from simfleet.shared.checkpoint_format import decode, encode, verify
from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import CheckpointError, StaleOwner
from simfleet.shared.jobs import Jobs
from simfleet.shared.messages.lifecycle import JobSpec, StoreInputs


@pytest.fixture
def checkpoints(redis_server, store):
    client = redis_server.client(1)
    yield Checkpoints(client, store, keep=2)
    client.close()


def test_arrays_dates_and_scalars_survive_a_round_trip_exactly():
    payload = {
        "status": np.array([0, 2, 6], dtype=np.uint8),
        "big_endian": np.arange(5, dtype=">i4"),
        "dates": np.array(["2025-01-01", "NaT"], dtype="datetime64[D]"),
        "types": np.array(["mi8", "mi17"]),
        "matrix": np.arange(12, dtype=np.int64).reshape(3, 4),
        "version_date": dt.date(2025, 7, 4),
        "day": 42,
        "nested": {"a": [1, 2.5, "x"]},
    }
    document = decode(encode("progress", "job-1", 42, payload))
    assert document["kind"] == "progress" and document["job_id"] == "job-1" and document["day"] == 42
    got = document["payload"]
    for name in ("status", "dates", "types", "matrix"):
        np.testing.assert_array_equal(got[name], payload[name])
        assert got[name].dtype == payload[name].dtype and got[name].shape == payload[name].shape
    np.testing.assert_array_equal(got["big_endian"], np.arange(5))
    assert got["big_endian"].dtype == np.dtype("<i4")
    assert got["version_date"] == dt.date(2025, 7, 4) and got["nested"] == {"a": [1, 2.5, "x"]}


def test_any_flipped_byte_is_detected():
    blob = bytearray(encode("result", "job-1", 10, {"x": np.arange(1000)}))
    for position in (3, 8, len(blob) // 2, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises(CheckpointError):
            verify(bytes(damaged), where="f.ckpt")
    with pytest.raises(CheckpointError, match="object"):
        encode("result", "job-1", 0, {"x": np.array([object()])})


def test_latest_skips_a_corrupted_newest_checkpoint(checkpoints, caplog):
    checkpoints.save("job", "progress", 100, {"day": 100})
    newest = checkpoints.save("job", "progress", 200, {"day": 200})
    checkpoints.store.put(newest.key, checkpoints.store.get(newest.key)[:-1] + b"\x00")
    restored = checkpoints.latest("job", ["progress"])
    assert restored is not None and restored.ref.day == 100 and restored.payload == {"day": 100}
    assert "skipping progress checkpoint of day 200" in caplog.text


def test_progress_checkpoints_are_pruned_and_results_kept(checkpoints):
    checkpoints.save("job", "environment", 0, {"inputs": 1})
    for day in (100, 200, 300, 400):
        checkpoints.save("job", "result", day, {"rows": day}, first_day=day - 100)
        checkpoints.save("job", "progress", day, {"day": day})
    refs = checkpoints.refs("job")
    assert [r.day for r in refs if r.kind == "progress"] == [300, 400]
    assert [r.first_day for r in checkpoints.result_refs("job", 400)] == [0, 100, 200, 300]
    assert len(checkpoints.store.keys("job/")) == 1 + 4 + 2
    with pytest.raises(CheckpointError, match="day 400"):
        checkpoints.result_refs("job", 500)
    checkpoints.drop("job")
    assert checkpoints.refs("job") == [] and checkpoints.store.keys("job/") == []


def spec(job_id: str = "job") -> JobSpec:
    return JobSpec(job_id=job_id, inputs=StoreInputs(key=f"{job_id}/inputs", sha256="0" * 64), days=100)


def test_a_fenced_save_is_refused_once_the_epoch_moved_on(checkpoints):
    jobs = Jobs(checkpoints.redis)
    jobs.create(spec())
    jobs.claim("job", "w1", "q1", epoch=0, seq=0)
    checkpoints.save("job", "progress", 1, {"day": 1}, fence=jobs.fence("job", 0))
    assert jobs.release("job", "w1") == 1
    with pytest.raises(StaleOwner):
        checkpoints.save("job", "progress", 2, {"day": 2}, fence=jobs.fence("job", 0))
    assert [r.day for r in checkpoints.refs("job")] == [1]
    assert len(checkpoints.store.keys("job/")) == 1  # the refused blob was removed
    with pytest.raises(StaleOwner, match="epoch"):
        jobs.claim("job", "w2", "q2", epoch=0, seq=0)


def test_a_blob_written_elsewhere_is_adopted_once_and_kept_when_the_fence_refuses(checkpoints):
    jobs = Jobs(checkpoints.redis)
    jobs.create(spec())
    inputs = checkpoints.write("job", "environment", 0, {"tables": {}})
    adopted = checkpoints.adopt("job", inputs, fence=jobs.fence("job", 0))
    assert checkpoints.adopt("job", inputs, fence=jobs.fence("job", 0)) == adopted
    assert [(r.key, r.sha256) for r in checkpoints.refs("job")] == [(inputs.key, inputs.sha256)]
    jobs.create(spec("late"))
    late = checkpoints.write("late", "environment", 0, {"tables": {}})
    jobs.cancel("late")
    with pytest.raises(StaleOwner):
        checkpoints.adopt("late", late, fence=jobs.fence("late", 0))
    assert checkpoints.store.get(late.key)  # the producer's blob stays where it was


def test_checkpoints_of_an_ended_job_go_once_their_retention_passed(checkpoints):
    checkpoints.save("job", "progress", 1, {"day": 1})
    checkpoints.retention_s = 3600.0
    assert not checkpoints.expire("job", finished=1000.0, now=1000.0 + 3599)
    assert checkpoints.refs("job")
    assert checkpoints.expire("job", finished=1000.0, now=1000.0 + 3601)
    assert checkpoints.refs("job") == [] and checkpoints.store.keys("job/") == []
