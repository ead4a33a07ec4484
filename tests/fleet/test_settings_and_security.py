import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery.result import AsyncResult

from simfleet.shared.errors import ConfigError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import ReplicationSummary
from simfleet.shared.messages.study import ReplicationRequest
from simfleet.shared.settings import CONFIG_ENV, load_settings
from simfleet.worker.des.scenario import load_scenario

from .conftest import wait_until

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


@pytest.mark.parametrize(
    ("content", "key", "message"),
    [
        ("brokr_url: redis://x:1/0\n", "brokr_url", "unknown key"),
        ("flower: {pasword: x}\n", "flower.pasword", "unknown key"),
        ("broker_url: http://127.0.0.1:6379/0\n", "broker_url", "expected a Redis URL"),
        ("result_backend: redis://127.0.0.1:notaport/0\n", "result_backend", "bad port"),
        ("accept_content: [msgpack, pickle]\n", "accept_content", "pickle is refused"),
        ("task_serializer: pickle\n", "task_serializer", "must be one of msgpack, json"),
        ("visibility_timeout_s: 10\n", "visibility_timeout_s", "at least 60"),
        ("cpu_worker: {concurrency: two}\n", "cpu_worker.concurrency", "expected int"),
    ],
)
def test_bad_settings_file_fails_naming_the_file_and_key(tmp_path, content, key, message):
    path = tmp_path / "fleet.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.key == key
    assert message in str(info.value)
    assert "fleet.yaml" in str(info.value)


def test_environment_overrides_are_validated_and_named(tmp_path):
    settings = load_settings(env={"SIMFLEET_FLOWER__PASSWORD": "s3cret", "SIMFLEET_VISIBILITY_TIMEOUT_S": "7200"})
    assert settings.flower.password == "s3cret" and settings.visibility_timeout_s == 7200
    with pytest.raises(ConfigError, match=r"SIMFLEET_FLOWER__PASSWROD: flower\.passwrod: unknown key"):
        load_settings(env={"SIMFLEET_FLOWER__PASSWROD": "x"})


def test_password_in_the_broker_url_is_kept():
    settings = load_settings(env={"SIMFLEET_BROKER_URL": "redis://:p%40ss@10.0.0.5:6379/2"})
    assert settings.broker_url.endswith("@10.0.0.5:6379/2")


def test_worker_with_bad_settings_fails_at_start_with_a_clear_message(tmp_path):
    config = tmp_path / "fleet.yaml"
    config.write_text("accept_content: [json, pickle]\n")
    done = subprocess.run(
        [sys.executable, "-m", "simfleet.producer.cli", "worker", "--role", "cpu"],
        env={**os.environ, CONFIG_ENV: str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "accept_content: pickle is refused" in done.stderr and str(config) in done.stderr


def test_a_pickle_message_is_rejected_without_running(fleet, start_worker, redis_server):
    worker = start_worker(concurrency=1)
    scenario = json.dumps(load_scenario(SCENARIOS / "web_search_load_test.yaml").to_dict())
    request = to_wire(ReplicationRequest(study_id="s1", replication=0, seed=1, scenario=scenario))
    pickled_id = f"pickled-{uuid.uuid4().hex}"
    fleet.app.send_task("des.run", args=(request,), task_id=pickled_id, serializer="pickle")
    honest = fleet.app.send_task("des.run", args=(request,))
    wait_until(lambda: fleet.task_meta(honest.id)["status"] == "SUCCESS", "the msgpack message to run", 60)
    summaries = decode(list[ReplicationSummary], fleet.task_meta(honest.id)["result"])  # a batch of one
    assert [summary.replication for summary in summaries] == [0]
    client = redis_server.client(0)
    deadline = time.monotonic() + 10
    while client.llen("des.run") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.llen("des.run") == 0, "the pickle message must have been taken off the queue"
    assert AsyncResult(pickled_id, app=fleet.app).state == "PENDING"
    log = worker.log.read_text()
    assert "ContentDisallowed" in log or "disallowed" in log.lower()
    assert pickled_id not in {json.loads(line).get("task_id") for line in log.splitlines() if line.startswith("{")}


def test_the_shipped_fleet_yaml_loads_and_documents_the_defaults():
    from simfleet.shared.local_secrets import with_local_secrets
    from simfleet.shared.settings import Settings

    path = Path(__file__).resolve().parents[2] / "config" / "fleet.yaml"
    settings = load_settings(path, env={})
    # Both sides take the local fleet's generated passwords, if this checkout has run one.
    assert settings == with_local_secrets(Settings(source=settings.source))
    assert "simfleet@" not in settings.broker_url and Settings().flower.password == ""  # no shipped password


def test_retention_retry_and_store_settings_are_validated_and_named():
    with pytest.raises(ConfigError, match=r"SIMFLEET_REDIS_RETRY_S: redis_retry_s: must be at least 0, got -1"):
        load_settings(env={"SIMFLEET_REDIS_RETRY_S": "-1"})
    with pytest.raises(ConfigError, match=r"stores\.checkpoint_retention_s: must be at least 0"):
        load_settings(env={"SIMFLEET_STORES__CHECKPOINT_RETENTION_S": "-5"})
    with pytest.raises(ConfigError, match=r"stores\.checkpoint_url: expected a directory"):
        load_settings(env={"SIMFLEET_STORES__CHECKPOINT_URL": "'  '"})
    with pytest.raises(ConfigError, match=r"records_expire_s: must be at least 60"):
        load_settings(env={"SIMFLEET_RECORDS_EXPIRE_S": "10"})
