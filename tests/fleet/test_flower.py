"""What an operator sees in Flower: a real local fleet (``simfleet fleet up``: Redis and Flower) and real workers.

Each test starts Redis and Flower first and its workers afterwards, as a fleet that scales up or restarts a worker
does, so Flower never saw these workers at its own start.
"""

from __future__ import annotations

import base64
import html
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.celery_app import publish_stage
from simfleet.shared.jobs import worker_queue
from simfleet.shared.messages.lifecycle import StageMessage
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, Settings, load_settings

from .conftest import Worker, local_fleet_config, wait_until
from .lifecycle_helpers import make_inputs

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "web_search_load_test.yaml"
USER, PASSWORD = "watcher", "flower-pw"


def simfleet(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simfleet.producer.cli", *args],
                          env={**os.environ, CONFIG_ENV: str(config)}, capture_output=True, text=True,
                          timeout=180)  # fmt: skip


class FlowerFleet:
    """Redis and Flower started by ``simfleet fleet up``, the workers a test adds, and Flower's HTTP API."""

    def __init__(self, config: Path, tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.settings: Settings = load_settings(config, env={})
        self.url = f"http://127.0.0.1:{self.settings.flower.port}"
        self.fleet = Fleet.from_settings(self.settings)
        self.workers: list[Worker] = []

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    def api(self, path: str) -> Any:
        return json.loads(self.get(path))

    def start_worker(self, role: str) -> Worker:
        worker = Worker(self.settings, self.tmp_path / f"worker-{len(self.workers)}.log", 1, {ROLE_ENV: role}, role)
        self.workers.append(worker)
        worker.wait_ready(self.fleet)
        return worker

    def queue_lengths(self) -> dict[str, int]:
        return {q["name"]: q["messages"] for q in self.api("/api/queues/length")["active_queues"]}


@pytest.fixture
def flower_fleet(tmp_path: Path) -> Iterator[FlowerFleet]:
    config = local_fleet_config(tmp_path, broker_password="fleet-pw", flower=f"user: {USER}, password: {PASSWORD}",
                                extra="gpu_worker: {progress_interval_s: 0.05}\n")  # fmt: skip
    up = simfleet("fleet", "up", "--cpu-workers", "0", "--gpu-workers", "0", "--no-exporter", config=config)
    assert up.returncode == 0, up.stderr
    fleet = FlowerFleet(config, tmp_path)
    yield fleet
    for worker in fleet.workers:
        worker.discard()
    fleet.fleet.close()
    simfleet("fleet", "down", config=config)


@pytest.mark.timeout(300)
def test_a_running_execute_stage_is_progress_with_its_day_in_flower_and_ends_with_a_readable_result(
    flower_fleet, tmp_path
):
    worker = flower_fleet.start_worker("gpu")
    inputs = make_inputs(tmp_path / "inputs", 1000, 3650, seed=4)
    job = flower_fleet.fleet.run_lifecycle(inputs=inputs, chunk_days=3650, sink="none")
    execute = f"{job.id}-2-e0"  # load, create, then the one execute stage (stage_task_id)

    def progress() -> dict[str, Any] | None:
        tasks = flower_fleet.api("/api/tasks?state=PROGRESS")
        return tasks.get(execute)

    running = wait_until(progress, "Flower to show the execute stage as PROGRESS", timeout_s=120, interval_s=0.01)
    figures = running["result"]
    assert running["name"] == "lifecycle.execute" and running["worker"] == worker.name
    assert figures["job_id"] == job.id and figures["stage"] == "execute"
    assert 0 < figures["day"] <= figures["days"] == 3650 and figures["airframes"] == 1000
    assert figures["percent"] == round(100 * figures["day"] / 3650, 2) and figures["days_per_s"] > 0

    job.wait(timeout=240)
    done = wait_until(lambda: (t := flower_fleet.api(f"/api/task/info/{execute}"))["state"] == "SUCCESS" and t,
                      "Flower to see the execute stage succeed")  # fmt: skip
    shown = f"'job': '{job.id}', 'stage': 'execute', 'days_done': 3650, 'next': 'export'"
    assert shown in done["result"]
    assert AsyncResult(execute, app=flower_fleet.fleet.app).result["next"] == "export"
    page = html.unescape(flower_fleet.get(f"/task/{execute}").decode())
    assert "lifecycle.execute" in page and shown in page


@pytest.mark.timeout(300)
def test_flower_lists_the_owner_queue_of_a_worker_started_after_it_and_counts_the_stages_waiting_there(
    flower_fleet,
):
    worker = flower_fleet.start_worker("gpu")
    owner_queue = worker_queue(worker.name)

    def queues_known() -> list[str]:  # Flower's cache, filled by its own inspection (no refresh asked)
        known = flower_fleet.api("/api/workers").get(worker.name, {})
        return [q["name"] for q in known.get("active_queues", [])]

    assert owner_queue in wait_until(queues_known, "Flower to know the worker's queues")
    assert owner_queue in flower_fleet.get("/broker").decode()

    worker.kill()  # a dead owner: a stage published to its queue waits there (until a watchdog deletes the queue)
    stage = StageMessage(job_id="lc-waiting", epoch=0, seq=1, stage="create")
    publish_stage(flower_fleet.fleet.app, stage, owner_queue, "normal")
    lengths = wait_until(lambda: (q := flower_fleet.queue_lengths()).get(owner_queue) and q,
                         "Flower to count the waiting stage")  # fmt: skip
    assert lengths[owner_queue] == 1 and lengths["simulation.agents.create"] == 0


@pytest.mark.timeout(300)
def test_two_cli_invocations_add_no_worker_and_no_label_value_to_flower(flower_fleet):
    worker = flower_fleet.start_worker("cpu")
    for _ in range(2):
        run = simfleet("des", "run", str(SCENARIO), "--replications", "2", "--fleet", "--batch", "1",
                       config=flower_fleet.config)  # fmt: skip
        assert run.returncode == 0, run.stderr
    wait_until(lambda: len(flower_fleet.api("/api/tasks?taskname=des.run&state=SUCCESS")) == 4,
               "Flower to see the four replications succeed")  # fmt: skip

    metrics = flower_fleet.get("/metrics").decode()
    labels = {line.split('worker="')[1].split('"')[0] for line in metrics.splitlines() if 'worker="' in line}
    assert labels == {worker.name}
    listed = {w["hostname"] for w in flower_fleet.api("/workers?json=1")["data"]}
    assert listed == {worker.name} and set(flower_fleet.api("/api/workers?refresh=1")) == {worker.name}
