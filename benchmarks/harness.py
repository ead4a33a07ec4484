"""A throw-away fleet for the benchmarks: a Redis server and worker processes in a temporary folder.

``with BenchFleet(extra_settings) as bench:`` starts Redis (append-only, so it can be killed and started again),
writes a settings file, and gives a :class:`~simfleet.producer.fleet.client.Fleet` client; ``bench.worker(...)``
starts a ``simfleet worker`` process and waits until it answers. Everything is stopped and removed at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, load_settings
from simfleet.worker.supervisor import redis_server_binary, wait_for

PASSWORD = "bench"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchFleet:
    """Redis, settings and workers in a temporary folder (see the module docstring)."""

    def __init__(self, extra_settings: str = "") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="simfleet-bench-")
        self.tmp = Path(self._tmp.name)
        self.port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.start_redis()
        url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}"
        self.config = self.tmp / "fleet.yaml"
        self.config.write_text(f"broker_url: {url}/0\nresult_backend: {url}/1\n"
                               f"stores: {{checkpoint_url: {self.tmp / 'checkpoints'}}}\n{extra_settings}")  # fmt: skip
        self.settings = load_settings(self.config, env={})
        self.fleet = Fleet.from_settings(self.settings)

    def start_redis(self) -> None:
        """Start Redis (again, from its append-only file, after :meth:`kill_redis`)."""
        self.redis = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        wait_for(redis.Redis(port=self.port, password=PASSWORD).ping, "redis", 20)

    def kill_redis(self) -> None:
        """SIGKILL Redis, as a crash would."""
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait(10)

    def worker(self, role: str, concurrency: int = 1, **extra_env: str) -> str:
        """Start a worker of ``role`` and wait until it answers and beats; return its node name."""
        node = f"bench-{role}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        env = {**os.environ, CONFIG_ENV: str(self.config), ROLE_ENV: role, "SIMFLEET_LOG_FORMAT": "json", **extra_env}
        log = self.tmp / f"{node}.log"
        self.workers[node] = subprocess.Popen(
            [sys.executable, "-m", "simfleet.producer.cli", "worker", "--role", role, "--name", node,
             "--concurrency", str(concurrency), "--logfile", str(log),
             "--loglevel", os.environ.get("BENCH_LOGLEVEL", "WARNING")],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(lambda: bool(self.fleet.app.control.ping(destination=[node], timeout=0.5))
                 and self.fleet.heartbeats.alive(node), f"worker {node}", 60)  # fmt: skip
        return node

    def kill_worker(self, node: str) -> None:
        """SIGKILL a whole worker (its main process and its pool), as a machine dying would."""
        os.killpg(self.workers[node].pid, signal.SIGKILL)
        self.workers[node].wait(10)

    def __enter__(self) -> BenchFleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.fleet.close()
        for process in self.workers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(60)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(10)
        self._tmp.cleanup()
