"""The checkpoint format, the directory store and the references in Redis (a real Redis server)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from simfleet.shared.checkpoints import Checkpoints, DirectoryStore, decode, encode, verify
from simfleet.shared.errors import CheckpointError, StaleOwner
from simfleet.shared.jobs import Jobs


@pytest.fixture
def checkpoints(redis_server, tmp_path):
    client = redis_server.client(1)
    yield Checkpoints(client, DirectoryStore(tmp_path / "store"), keep=2)
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
    path = DirectoryStore.path(newest.uri)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
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
    files = sorted(p.name for p in (checkpoints.store.root / "job").iterdir())
    assert len(files) == 1 + 4 + 2
    with pytest.raises(CheckpointError, match="day 400"):
        checkpoints.result_refs("job", 500)
    checkpoints.drop("job")
    assert checkpoints.refs("job") == [] and not (checkpoints.store.root / "job").exists()


def test_a_fenced_save_is_refused_once_the_epoch_moved_on(checkpoints):
    jobs = Jobs(checkpoints.redis)
    jobs.create("job", {"job_id": "job"}, task_ids=[])
    epoch = jobs.claim("job", "w1", "q1", seen_epoch=0)
    checkpoints.save("job", "progress", 1, {"day": 1}, fence=jobs.fence("job", epoch))
    assert jobs.release("job", "w1") == epoch + 1
    with pytest.raises(StaleOwner):
        checkpoints.save("job", "progress", 2, {"day": 2}, fence=jobs.fence("job", epoch))
    assert [r.day for r in checkpoints.refs("job")] == [1]
    assert len(list((checkpoints.store.root / "job").iterdir())) == 1
    with pytest.raises(StaleOwner):
        jobs.claim("job", "w2", "q2", seen_epoch=epoch)
