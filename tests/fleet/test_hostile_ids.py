"""An id that names a path (``../../x``) reaches no store: refused by the messages, the checkpoints and the store.

The client refuses such an id before it publishes (tests/producer/test_api_validation.py); these tests play someone
who writes to the broker or calls the shared layers directly, past the client.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from simfleet.shared.celery_app import LIFECYCLE_LOAD, publish_stage, stage_queues
from simfleet.shared.checkpoints import Checkpoints
from simfleet.shared.errors import ConfigError, MessageError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.lifecycle import JobSpec, StageMessage, StageProgress
from simfleet.shared.messages.study import ReplicationRequest, StudyRecord
from simfleet.shared.redis_client import connect
from simfleet.shared.stores.directory import DirectoryStore

from .conftest import wait_until

HOSTILE = ["../../x", "a/../../x", "/etc", ".hidden", "a b", "x" * 65, ""]


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


@pytest.mark.parametrize("job_id", HOSTILE)
def test_messages_refuse_an_id_outside_the_id_rule_on_decode(job_id):
    stage = {"job_id": job_id, "epoch": 0, "seq": 0, "stage": "load"}
    spec = {"job_id": job_id, "inputs": {"kind": "store", "key": "k", "sha256": "s"}, "days": 10}
    request = {"study_id": job_id, "replication": 0, "seed": 1, "scenario": "{}"}
    record = {"study_id": job_id, "scenario": "s", "source": "s", "replications": 1, "seed": 1, "priority": "normal",
              "created": 0.0, "task_ids": []}  # fmt: skip
    progress = {"job_id": job_id, "stage": "load", "day": 0, "days": 1, "airframes": 1, "percent": 0.0,
                "days_per_s": 0.0, "rss_mb": 0.0, "device_memory_mb": None, "worker": "w", "pid": 1}  # fmt: skip
    for kind, value, field in ((StageMessage, stage, "job_id"), (JobSpec, spec, "job_id"),
                               (ReplicationRequest, request, "study_id"), (StudyRecord, record, "study_id"),
                               (StageProgress, progress, "job_id")):  # fmt: skip
        with pytest.raises(MessageError) as refused:
            decode(kind, value)
        assert refused.value.path == f"$.{field}", kind


def test_messages_take_the_longest_valid_id_and_refuse_days_past_max_days():
    longest = "a" + "-" * 63
    assert decode(StageMessage, {"job_id": longest, "epoch": 0, "seq": 0, "stage": "load"}).job_id == longest
    spec = {"job_id": "j", "inputs": {"kind": "store", "key": "k", "sha256": "s"}, "days": 65_536}
    with pytest.raises(MessageError, match=r"<= 65535") as refused:
        decode(JobSpec, spec)
    assert refused.value.path == "$.days"


def test_checkpoints_refuse_a_job_id_that_would_leave_the_store(fleet_settings, tmp_path):
    area = tmp_path / "area"
    root = area / "deep" / "store"  # '../../<escape>' from here would be area/<escape>
    escape = f"escape-{uuid.uuid4().hex[:8]}"
    client = connect(fleet_settings.result_backend)
    checkpoints = Checkpoints(client, DirectoryStore(root))
    for job_id in (f"../../{escape}", f"a/../../{escape}", f"/tmp/{escape}"):
        with pytest.raises(ConfigError, match="job_id"):
            checkpoints.save(job_id, "progress", 1, {"day": 1})
        with pytest.raises(ConfigError, match="job_id"):
            checkpoints.drop(job_id)
    assert not (area / escape).exists() and not Path(f"/tmp/{escape}").exists()
    assert files_under(area) == []
    assert client.keys("simfleet:job:*") == []
    client.close()


def test_a_hand_crafted_stage_message_with_a_path_for_a_job_id_is_rejected_by_the_worker(
    fleet, start_worker, tmp_path
):
    """Before the id rule reached the messages, such a message was decoded and its job id used as it came."""
    worker = start_worker(role="gpu")
    escape = f"escape-{uuid.uuid4().hex[:8]}"
    hostile = StageMessage(job_id=f"../../{escape}", epoch=0, seq=0, stage="load")  # built, never validated
    publish_stage(fleet.app, hostile, stage_queues(fleet.settings)[LIFECYCLE_LOAD], "normal")
    wait_until(lambda: any("rejected a malformed message" in line and "$.job_id" in line for line in worker.lines()),
               "the worker to refuse the message on decode", 60)  # fmt: skip
    store_root = tmp_path / "checkpoints"
    assert not (store_root / ".." / ".." / escape).exists() and not (tmp_path / escape).exists()
    assert files_under(store_root) == []
    assert fleet.redis.keys("simfleet:job:*") == []
    assert to_wire(hostile)["job_id"] == f"../../{escape}"  # the message did carry the path
