"""Redis outages: killed with SIGKILL mid-work and started again from its append-only file, unreachable, refusing.

A running lifecycle job and a running DES study complete; the producer's wait says it is reconnecting instead of
dying; no stage's effect is applied twice; commands say in one line that Redis is unreachable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from simfleet.shared.settings import CONFIG_ENV
from simfleet.worker.des.runner import run_study
from simfleet.worker.des.scenario import load_scenario, parse_scenario

from .conftest import wait_until
from .lifecycle_helpers import assert_mp2_is_the_local_runs, make_inputs, wait_for_stage
from .test_study import comparable

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
OUTAGE_S = 5.0


class Outage:
    """Kills Redis at the first progress the wait reports, keeps it down OUTAGE_S, starts it again from its file.

    ``watch`` is the wait's ``on_progress``: it records the states the wait went through.
    """

    def __init__(self, redis_server) -> None:
        self.go = threading.Event()
        self.states: list[str] = []
        self.thread = threading.Thread(target=self._run, args=(redis_server,), daemon=True)
        self.thread.start()

    def _run(self, redis_server) -> None:
        self.go.wait(120)
        redis_server.kill()
        time.sleep(OUTAGE_S)
        redis_server.start()

    def watch(self, progress) -> None:
        self.states.append(progress.state)
        self.go.set()


@pytest.mark.death
def test_a_lifecycle_job_completes_across_a_redis_restart(fleet, start_worker, redis_server, tmp_path):
    inputs = make_inputs(tmp_path / "inputs", 3000, 1460, seed=12)
    start_worker(role="gpu")
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=365, sink="none")
    wait_for_stage(fleet, job.id, 3)
    outage = Outage(redis_server)
    summary = job.wait(timeout=240, on_progress=outage.watch)
    outage.thread.join()
    assert "reconnecting" in outage.states and outage.states[-1] == "done"
    assert summary.airframe_rows == 3000 * 1460
    results = [ref for ref in fleet.checkpoints().refs(job.id) if ref.kind == "result"]
    assert sorted({ref.first_day for ref in results}) == [0, 365, 730, 1095]
    job.export(tmp_path / "out")  # every day exactly once, as the local run has it
    assert_mp2_is_the_local_runs(tmp_path / "out", inputs)


@pytest.mark.death
def test_a_des_study_completes_across_a_redis_restart(fleet, start_worker, redis_server):
    start_worker(concurrency=2)
    data = load_scenario(SCENARIOS / "mixed_workload.yaml").to_dict()
    scenario = parse_scenario({**data, "horizon_s": 6_000, "name": "mixed-outage"})
    # On the Python engine, whose replications last long enough to be cut by the outage (the kernel's take 0.05 s);
    # the local answer it must equal comes from the kernel.
    study = fleet.run_des(scenario, replications=4, seed=21, engine="python")
    wait_until(lambda: [r for r in study.progress().running if r.percent > 5], "replications in progress")
    outage = Outage(redis_server)
    result = study.wait(timeout=240, on_progress=outage.watch)
    outage.thread.join()
    assert "reconnecting" in outage.states
    assert [s.replication for s in study.summaries(timeout=30)] == list(range(4))
    assert comparable(result) == comparable(run_study(scenario, replications=4, seed=21, processes=1))


def simfleet(*args: str, config: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "simfleet.producer.cli", *args]
    env = {**os.environ, CONFIG_ENV: config}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_commands_say_in_one_line_that_redis_is_unreachable(fleet_settings, redis_server):
    redis_server.stop()
    started = time.monotonic()
    done = simfleet("job", "list", config=fleet_settings.source)
    assert done.returncode == 2 and time.monotonic() - started < 20
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"the fleet's Redis at redis://:***@127.0.0.1:{redis_server.port}/1 is unreachable" in lines[0]
    assert "test-secret" not in done.stderr


def test_a_worker_with_a_wrong_password_fails_at_start_with_one_clear_line(fleet_settings, tmp_path):
    config = tmp_path / "wrong.yaml"
    config.write_text(Path(fleet_settings.source).read_text().replace("test-secret", "not-the-password"))
    done = simfleet("worker", "--role", "cpu", config=str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "refused the password" in line and "redis://:***@127.0.0.1:" in line and "not-the-password" not in line
