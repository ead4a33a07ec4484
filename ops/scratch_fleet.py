"""A local fleet of a script's own, for the scripts under ops/ that take the docs' pictures from a real run.

``ScratchFleet`` writes a settings file in a temporary folder (every port free, the fleet's run folder, checkpoints
and ClickHouse inside it; Redis's password left to ``fleet up``, which generates one) and runs ``simfleet``
commands on it, so that such a script never touches a fleet the user has up.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simfleet.shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


class ScratchError(Exception):
    """A step of the run failed; the message says which (the script prints it as one line)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait(condition: Callable[[], Any], what: str, timeout_s: float, interval_s: float = 0.5) -> Any:
    """Poll ``condition`` until it is truthy; its value, or ScratchError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise ScratchError(f"gave up waiting for {what} after {timeout_s:.0f} s")


class ScratchFleet:
    """The settings of a fleet in ``folder`` on free ports, and ``simfleet`` commands run on them.

    Args:
        folder: where the settings file, the fleet's run folder, checkpoints and ClickHouse go.
        flower_password: Flower's password (user ``simfleet``).
        extra: more settings, appended to the file as they are (YAML lines).
    """

    def __init__(self, folder: Path, flower_password: str, extra: str = "") -> None:
        self.folder = folder
        self.config = folder / "fleet.yaml"
        self.metrics_port = free_port()
        self.flower_port = free_port()
        self.flower_password = flower_password
        redis_port = free_port()
        self.config.write_text(
            f"broker_url: redis://127.0.0.1:{redis_port}/0\n"
            f"result_backend: redis://127.0.0.1:{redis_port}/1\n"
            f"local_fleet: {{run_dir: {folder / 'fleet'}, redis_port: {redis_port}}}\n"
            f"metrics: {{port: {self.metrics_port}}}\n"
            f"flower: {{port: {self.flower_port}, user: simfleet, password: {flower_password}}}\n"
            f"stores: {{checkpoint_url: {folder / 'checkpoints'}}}\n"
            f"clickhouse_dsn: chdb://{folder / 'clickhouse'}\n" + extra
        )
        self.config.chmod(0o600)

    def settings(self) -> Settings:
        """The fleet's settings, with the Redis password ``fleet up`` generated (so: after ``fleet up``)."""
        return load_settings(self.config, env={})

    def simfleet(self, *args: str, timeout_s: float = 600) -> str:
        """Run a ``simfleet`` command on this fleet's settings; its standard output."""
        done = subprocess.run([sys.executable, "-m", "simfleet.producer.cli", *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)  # fmt: skip
        if done.returncode != 0:
            raise ScratchError(f"simfleet {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-600:]}")
        return done.stdout

    def simfleet_in_background(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        """Start a ``simfleet`` command and go on; its output goes to ``<folder>/<name>.log``."""
        with open(self.folder / f"{name}.log", "wb") as out:
            return subprocess.Popen([sys.executable, "-m", "simfleet.producer.cli", *args, "--config",
                                     str(self.config)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
