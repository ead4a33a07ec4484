"""Real Redis servers and real Celery worker processes for the fleet tests, each on its own free port.

Redis runs with append-only persistence (``appendfsync always``), so a test can kill it with SIGKILL and start it
again from its file, as an operator's restart would. Workers are ``simfleet worker`` processes; a worker can be
given its own working directory and temporary directory (``home=``), which is how a test stands in for a worker on
another machine: it then shares nothing with the producer or other workers but Redis and the checkpoint store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, Settings, load_settings
from simfleet.worker.supervisor import redis_server_binary, wait_for
from tests.conftest import free_port

PASSWORD = "test-secret"


class RedisServer:
    """A redis-server process with append-only persistence, which a test can kill and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.client().ping, f"redis on {self.port}", 20)

    def kill(self) -> None:
        """SIGKILL, as a crash would: what is not in the append-only file is lost."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, db=db, socket_timeout=5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def settings_text(server: RedisServer, tmp_path: Path, checkpoint_url: str | None = None) -> str:
    """A fleet settings file for the test's Redis (fast heartbeats and sweeps, so deaths are seen in seconds)."""
    return (
        f"broker_url: {server.url}/0\n"
        f"result_backend: {server.url}/1\n"
        "redis_retry_s: 30\n"
        "cpu_worker: {progress_interval_s: 0.2}\n"
        "gpu_worker: {heartbeat_interval_s: 0.3, heartbeat_ttl_s: 3.0, watchdog_interval_s: 0.3,"
        " progress_interval_s: 0.2}\n"
        f"stores: {{checkpoint_url: '{checkpoint_url or (tmp_path / 'checkpoints').as_uri()}'}}\n"
        f"clickhouse_dsn: chdb://{tmp_path / 'clickhouse'}\n"
        f"local_fleet: {{run_dir: {tmp_path / 'run'}, redis_port: {server.port}}}\n"
        f"metrics: {{port: {free_port()}}}\n"
        f"flower: {{port: {free_port()}, user: tester, password: flower-secret}}\n"
    )


def local_fleet_config(tmp_path: Path, *, broker_password: str = "", flower: str = "", extra: str = "") -> Path:
    """A settings file for a fleet that ``simfleet fleet up`` starts on free ports under ``tmp_path``.

    ``broker_password`` goes in the broker URLs (none: the fleet generates one); ``flower`` is the inside of the
    ``flower`` section beside its port (``user: u, password: p``); ``extra`` is appended as is.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = f":{broker_password}@" if broker_password else ""
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f"broker_url: redis://{auth}127.0.0.1:{port}/0\n"
        f"result_backend: redis://{auth}127.0.0.1:{port}/1\n"
        f"local_fleet: {{run_dir: {tmp_path / 'run'}, redis_port: {port}}}\n"
        f"metrics: {{port: {free_port()}}}\n"
        f"flower: {{port: {free_port()}{', ' + flower if flower else ''}}}\n"
        f"stores: {{checkpoint_url: {tmp_path / 'checkpoints'}}}\n"
        f"clickhouse_dsn: chdb://{tmp_path / 'clickhouse'}\n" + extra
    )
    return config


@pytest.fixture
def fleet_settings(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A settings file pointing at the test's Redis, exported through SIMFLEET_CONFIG for child processes."""
    config = tmp_path / "fleet.yaml"
    config.write_text(settings_text(redis_server, tmp_path))
    monkeypatch.setenv(CONFIG_ENV, str(config))
    return load_settings(config)


class Worker:
    """A ``simfleet worker --role cpu|gpu`` process and its log file.

    Args:
        settings: the fleet's settings (the worker reads the same file).
        log: where the worker logs.
        concurrency: pool processes (the CPU role).
        extra_env: more environment (a setting overridden for this worker).
        role: ``cpu`` or ``gpu``.
        home: a working and temporary directory of its own (a worker on another machine), else the test's.
    """

    def __init__(self, settings: Settings, log: Path, concurrency: int, extra_env: dict[str, str], role: str = "cpu",
                 home: Path | None = None) -> None:  # fmt: skip
        self.name = f"{role}-test-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        self.log = log
        env = {**os.environ, CONFIG_ENV: settings.source, "SIMFLEET_LOG_FORMAT": "json", **extra_env}
        if home is not None:
            (home / "tmp").mkdir(parents=True, exist_ok=True)
            env.update(TMPDIR=str(home / "tmp"), HOME=str(home))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simfleet.producer.cli", "worker", "--role", role, "--concurrency",
             str(concurrency), "--name", self.name, "--logfile", str(log)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=home,
        )  # fmt: skip
        self.settings = settings

    def wait_ready(self, fleet: Fleet, timeout_s: float = 60.0) -> None:
        """Until the worker answers a Celery ping and beats (the fleet knows it is alive)."""

        def answers() -> bool:
            assert self.process.poll() is None, f"worker exited early; log:\n{self.log.read_text()[-3000:]}"
            return bool(fleet.app.control.ping(destination=[self.name], timeout=0.5)) and fleet.heartbeats.alive(
                self.name
            )

        wait_for(answers, f"worker {self.name}", timeout_s, interval_s=0.2)

    def pool_pids(self, fleet: Fleet) -> list[int]:
        stats = fleet.app.control.inspect(destination=[self.name], timeout=2).stats() or {}
        return list(stats[self.name]["pool"]["processes"])

    def signal(self, number: int) -> None:
        """Send ``number`` to the worker and its pool processes (its whole process group)."""
        os.killpg(self.process.pid, number)

    def kill(self) -> None:
        """SIGKILL the whole worker, as a machine dying would."""
        self.signal(signal.SIGKILL)
        self.process.wait(10)

    def discard(self) -> None:
        """End the worker at once at the end of a test (its warm shutdown would only cost time)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def lines(self) -> list[str]:
        """The messages of its JSON log."""
        import json

        text = self.log.read_text().splitlines()
        return [json.loads(line).get("message", "") for line in text if line.startswith("{")]


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(fleet_settings: Settings, fleet: Fleet, tmp_path: Path) -> Iterator[StartWorker]:
    workers: list[Worker] = []

    def start(concurrency: int = 2, role: str = "cpu", home: Path | None = None, wait: bool = True,
              **extra_env: str) -> Worker:  # fmt: skip
        worker = Worker(fleet_settings, tmp_path / f"worker-{len(workers)}.log", concurrency,
                        {ROLE_ENV: role, **extra_env}, role, home)  # fmt: skip
        workers.append(worker)
        if wait:
            worker.wait_ready(fleet)
        return worker

    yield start
    for worker in workers:
        worker.discard()


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
