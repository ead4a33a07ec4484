import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.settings import CONFIG_ENV, load_settings
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

from .conftest import local_fleet_config, wait_until

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


def simfleet(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simfleet.producer.cli", *args],
        env={**os.environ, CONFIG_ENV: str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def flower_get(url: str, user: str | None = None, password: str | None = None):
    request = urllib.request.Request(url)
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def local_config(tmp_path):
    config = local_fleet_config(tmp_path, broker_password="fleet-pw", flower="user: watcher, password: flower-pw")
    yield config
    simfleet("fleet", "down", config=config)


def test_fleet_up_starts_everything_flower_sees_it_and_down_stops_exactly_it(local_config, tmp_path):
    up = simfleet("fleet", "up", "--cpu-workers", "1", "--concurrency", "2", config=local_config)
    assert up.returncode == 0, up.stderr
    assert "Flower: http://127.0.0.1:" in up.stdout
    settings = load_settings(local_config, env={})
    state = json.loads((Path(settings.local_fleet.run_dir) / "fleet.json").read_text())
    pids = {p["name"]: p["pid"] for p in state["processes"]}
    assert set(pids) == {"redis", "cpu-worker-1", "gpu-worker-0", "flower", "exporter"}
    assert f"metrics: http://127.0.0.1:{settings.metrics.port}/metrics" in up.stdout
    assert all(psutil.pid_exists(pid) for pid in pids.values())

    inputs = tmp_path / "inputs"
    write_inputs(synthesize(30, 200, seed=5), inputs, "csv")
    with Fleet.from_settings(settings) as fleet:
        study = fleet.run_des(SCENARIOS / "web_search_load_test.yaml", replications=3, batch=1)  # 3 tasks
        job = fleet.run_lifecycle(inputs=inputs, chunk_days=100)
        answer, summary = fleet.wait_all([study, job], timeout=120)
        assert answer.replications == 3
        assert summary.airframe_rows == 30 * 200 and summary.worker.startswith("gpu0-")

    status = simfleet("fleet", "status", "--json", config=local_config)
    assert status.returncode == 0, status.stderr
    view = json.loads(status.stdout)
    pools = {w["name"][:4]: len(w["pool_processes"]) for w in view["workers"]}
    assert pools == {"cpu1": 2, "gpu0": 1}
    assert view["finished"] >= 4 + 5 and view["queues"]["des.run"] == 0
    assert view["lifecycle_jobs"] == []  # the finished job left the active set
    assert {info["role"] for info in view["heartbeats"].values()} == {"cpu", "gpu"}
    assert list(view["worker_queues"]) == [q for i in view["heartbeats"].values() for q in i["queues"]
                                           if q.startswith("simfleet.worker.")]  # fmt: skip
    assert view["local_fleet"]["log_dir"].endswith("logs")
    assert all(p["alive"] for p in view["local_fleet"]["processes"])

    flower = f"http://127.0.0.1:{settings.flower.port}"
    workers = flower_get(f"{flower}/api/workers?refresh=1", "watcher", "flower-pw")
    assert any(name.startswith("cpu1-") for name in workers)
    tasks = wait_until(
        lambda: [
            t
            for t in flower_get(f"{flower}/api/tasks", "watcher", "flower-pw").values()
            if t.get("name") == "des.run" and t.get("state") == "SUCCESS"
        ],
        "Flower to list the finished replications",
    )
    assert len(tasks) == 3
    with pytest.raises(urllib.error.HTTPError) as refused:
        flower_get(f"{flower}/api/workers")
    assert refused.value.code == 401

    # The exporter 'up' started serves the fleet's series: both workers beat, the done job and the study counted.
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics.port}/metrics", timeout=10) as response:
        series = response.read().decode()
    assert 'simfleet_workers{role="cpu"} 1.0' in series and 'simfleet_workers{role="gpu"} 1.0' in series
    assert 'simfleet_jobs_ended_total{state="done"} 1.0' in series
    assert "simfleet_des_replications_total 3.0" in series

    down = simfleet("fleet", "down", config=local_config)
    assert down.returncode == 0, down.stderr
    wait_until(
        lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids.values()),
        "processes to stop",
    )
    assert not (Path(settings.local_fleet.run_dir) / "fleet.json").exists()


def test_fleet_up_twice_is_refused(local_config):
    assert simfleet("fleet", "up", "--cpu-workers", "1", "--no-flower", config=local_config).returncode == 0
    again = simfleet("fleet", "up", "--cpu-workers", "1", "--no-flower", config=local_config)
    assert again.returncode == 2 and "already up" in again.stderr
