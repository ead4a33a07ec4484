"""What the benchmarks share: a verdict per target, and a throw-away fleet (Redis and workers in a temporary folder).

Every benchmark checks its figures through :class:`Verdicts`: one line per target as it is measured
(``target: ... ours X vs peer Y -> PASS``), a table of them all at the end, and the exit status (1 when a target is
missed), which is how ``make bench`` knows.

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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, load_settings
from simfleet.worker.supervisor import redis_server_binary, wait_for

PASSWORD = "bench"


@dataclass(frozen=True)
class Verdict:
    """One target: what it asks, our figure, the peer's (``-`` when the target has none), whether it was met."""

    target: str
    ours: str
    peer: str
    met: bool

    def line(self) -> str:
        """``target: ... ours X vs peer Y -> PASS`` (or ``MISS``)."""
        peer = "(no peer figure)" if self.peer == "-" else f"vs peer {self.peer}"
        return f"target: {self.target}: ours {self.ours} {peer} -> {'PASS' if self.met else 'MISS'}"


class Verdicts:
    """The targets of one benchmark: each printed as it is checked, all of them in a table at the end.

    ``verdicts.check("fleet / local wall time <= 1.15", f"{ratio:.3f}", "-", ratio <= 1.15)``; the benchmark's
    ``main`` returns :meth:`exit_code`, which prints the table and is 1 when any target was missed.
    """

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self.verdicts: list[Verdict] = []

    def check(self, target: str, ours: str, peer: str, met: bool) -> bool:
        """Record (and print) one target's verdict; returns ``met``."""
        verdict = Verdict(target, ours, peer, bool(met))
        self.verdicts.append(verdict)
        print(verdict.line(), flush=True)
        return verdict.met

    def exit_code(self) -> int:
        """Print every verdict as a table; 1 when a target was missed (or none was checked), else 0."""
        header = ("target", "ours", "peer", "verdict")
        rows = [(v.target, v.ours, v.peer, "PASS" if v.met else "MISS") for v in self.verdicts]
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
        missed = sum(not v.met for v in self.verdicts)
        print(f"\n{self.benchmark}: {len(rows)} target(s), {missed} missed")
        for row in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if not self.verdicts:
            print("no target was checked: the benchmark measured nothing")
        return 1 if missed or not self.verdicts else 0


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
