"""The docs' screenshots, from a real run: Flower's task page of a lifecycle execute stage in ``PROGRESS``.

Run from the repository root: ``.venv/bin/python ops/screenshots.py [--out docs/images] [--airframes 2000]``. It
needs Chromium (``apt-get install chromium``, or ``--chromium PATH``), and starts a local fleet of its own in a
temporary folder, on free ports, with a random Flower password (Redis, one GPU-role worker and Flower, through
``simfleet fleet up``; see ``scratch_fleet.py``), so it never touches a fleet you have up. It then:

1. submits a synthetic lifecycle job (one execute stage of 3,650 days) and waits until Flower's API shows that
   stage as ``PROGRESS`` with a day reached;
2. pauses the worker (SIGSTOP to its process group) so the page is taken while the stage is running, takes the
   page with headless Chromium at 1400 x 900, and lets the worker go on (SIGCONT);
3. waits for the job to finish and stops the fleet.

It writes ``flower-task-progress.png`` under ``--out`` and prints the figures the page shows.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from scratch_fleet import ScratchError, ScratchFleet  # the script's folder, ops/, is on the path

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.settings import Settings
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

WINDOW = "1400,900"
DAYS = 3650


class FlowerAPI:
    """Flower's HTTP API, with the fleet's credentials."""

    def __init__(self, settings: Settings) -> None:
        flower = settings.flower
        self.base = f"http://{flower.address}:{flower.port}"
        self.user, self.password = flower.user, flower.password

    def get(self, path: str) -> Any:
        """The JSON answer of ``path``."""
        request = urllib.request.Request(self.base + path)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def page_url(self, path: str) -> str:
        """The page's address with the credentials in it (Chromium answers the basic-auth challenge with them)."""
        host = self.base.removeprefix("http://")
        return f"http://{self.user}:{self.password}@{host}{path}"


def wait_progress(flower: FlowerAPI, task_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """Flower's view of ``task_id`` once it is in ``PROGRESS`` with a day reached."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            task = flower.get(f"/api/task/info/{task_id}")
        except urllib.error.HTTPError:  # not seen by Flower yet
            task = {}
        if task.get("state") == "PROGRESS" and task["result"].get("day", 0) > DAYS // 10:
            return dict(task)
        if task.get("state") in ("SUCCESS", "FAILURE"):
            sys.exit(f"the stage ended ({task['state']}) before it was seen running: try more --airframes")
        time.sleep(0.02)
    sys.exit(f"Flower did not show {task_id} in PROGRESS within {timeout_s:.0f} s")


def screenshot(chromium: str, url: str, out: Path) -> None:
    """Headless Chromium's picture of ``url``, as ``out`` (PNG)."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={WINDOW}", f"--screenshot={out}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def main() -> int:
    """Start a fleet of its own, take the pictures, stop the fleet."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder of the PNG files")
    parser.add_argument("--airframes", type=int, default=2000, help="fleet size of the job shown (default 2000)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"),
                        help="Chromium's executable (default: chromium on the PATH)")  # fmt: skip
    args = parser.parse_args()
    if not args.chromium:
        sys.exit("Chromium not found: apt-get install chromium, or give --chromium PATH")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="simfleet-screens-") as folder:
        tmp = Path(folder)
        progress = "gpu_worker: {progress_interval_s: 0.2}\n"
        fleet = ScratchFleet(tmp, flower_password=secrets.token_hex(12), extra=progress)
        write_inputs(synthesize(args.airframes, DAYS, seed=1), tmp / "inputs", "parquet")
        try:
            fleet.simfleet("fleet", "up", "--cpu-workers", "0", "--gpu-workers", "1", "--no-exporter")
            try:
                return take(fleet.settings(), tmp / "inputs", args.chromium, args.out)
            finally:
                fleet.simfleet("fleet", "down")
        except ScratchError as exc:
            sys.exit(str(exc))


def take(settings: Settings, inputs: Path, chromium: str, out: Path) -> int:
    """Run the job and take Flower's task page of its execute stage while it runs."""
    flower = FlowerAPI(settings)
    with Fleet.from_settings(settings) as fleet:
        job = fleet.run_lifecycle(inputs=inputs, chunk_days=DAYS, sink="none")
        execute = f"{job.id}-2-e0"  # load, create, then the one execute stage
        task = wait_progress(flower, execute)
        worker_pid = int(fleet.heartbeats.nodes()[task["worker"]]["pid"])
        group = os.getpgid(worker_pid)
        os.killpg(group, signal.SIGSTOP)  # the stage stays where Flower last saw it while the page is taken
        try:
            task = flower.get(f"/api/task/info/{execute}")
            png = out / "flower-task-progress.png"
            screenshot(chromium, flower.page_url(f"/task/{execute}"), png)
        finally:
            os.killpg(group, signal.SIGCONT)
        job.wait(timeout=600)
    print(f"{png}: {png.stat().st_size / 1024:.0f} KiB, {task['name']} {task['state']} {task['result']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
