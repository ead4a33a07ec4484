"""Real Redis servers and real Celery worker processes for the fleet tests, each on its own free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from simfleet.producer.fleet.client import Fleet
from simfleet.producer.fleet.local import redis_server_binary, wait_for
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, Settings, load_settings

PASSWORD = "test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    url: str
    process: subprocess.Popen[bytes]

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, db=db)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    port = free_port()
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(port, f"redis://:{PASSWORD}@127.0.0.1:{port}", process)
    wait_for(server.client().ping, f"redis on {port}", 10)
    yield server
    process.terminate()
    process.wait(10)


@pytest.fixture
def fleet_settings(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A settings file pointing at the test's Redis, exported through SIMFLEET_CONFIG for child processes."""
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f"broker_url: {redis_server.url}/0\n"
        f"result_backend: {redis_server.url}/1\n"
        "cpu_worker: {progress_interval_s: 0.2}\n"
        "gpu_worker: {heartbeat_interval_s: 0.3, heartbeat_ttl_s: 1.5, watchdog_interval_s: 0.3,"
        " progress_interval_s: 0.2}\n"
        f"stores: {{checkpoint_dir: {tmp_path / 'checkpoints'}, results_dir: {tmp_path / 'results'}}}\n"
        f"clickhouse_dsn: chdb://{tmp_path / 'clickhouse'}\n"
        f"local_fleet: {{run_dir: {tmp_path / 'run'}, redis_port: {redis_server.port}}}\n"
        f"flower: {{port: {free_port()}, user: tester, password: flower-secret}}\n"
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))
    return load_settings(config)


class Worker:
    """A `simfleet worker --role cpu|gpu` process and its log file."""

    def __init__(
        self, settings: Settings, log: Path, concurrency: int, extra_env: dict[str, str], role: str = "cpu"
    ) -> None:
        self.name = f"{role}-test-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.log = log
        env = {**os.environ, CONFIG_ENV: settings.source, "SIMFLEET_LOG_FORMAT": "json", **extra_env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simfleet.producer.cli", "worker", "--role", role, "--concurrency", str(concurrency),
             "--name", self.name, "--logfile", str(log)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.settings = settings

    def wait_ready(self, fleet: Fleet, timeout_s: float = 60.0) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, f"worker exited early; log:\n{self.log.read_text()[-3000:]}"
            return bool(fleet.app.control.ping(destination=[self.name], timeout=0.5))

        wait_for(answers, f"worker {self.name}", timeout_s, interval_s=0.2)

    def pool_pids(self, fleet: Fleet) -> list[int]:
        stats = fleet.app.control.inspect(destination=[self.name], timeout=2).stats() or {}
        return list(stats[self.name]["pool"]["processes"])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture
def start_worker(fleet_settings: Settings, fleet: Fleet, tmp_path: Path) -> Iterator[object]:
    workers: list[Worker] = []

    def start(concurrency: int = 2, role: str = "cpu", **extra_env: str) -> Worker:
        worker = Worker(
            fleet_settings, tmp_path / f"worker-{len(workers)}.log", concurrency, {ROLE_ENV: role, **extra_env}, role
        )
        workers.append(worker)
        worker.wait_ready(fleet)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def fleet(fleet_settings: Settings) -> Iterator[Fleet]:
    client = Fleet.from_settings(fleet_settings)
    yield client
    client.close()


def wait_until(condition, what: str, timeout_s: float = 30.0, interval_s: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")
