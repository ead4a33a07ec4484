"""``render_dashboard.py --run``: the picture of docs/operations.md from a real run.

A local fleet of its own (:class:`scratch_fleet.ScratchFleet`: ``simfleet fleet up`` in a temporary folder, on free
ports), a ``prometheus`` process scraping its exporter every second and evaluating ops/prometheus/alerts.yml, a
workload of a few minutes (lifecycle jobs of the 279-airframe reference fleet, a DES study that fills ``des.run``, a
GPU-role worker and a CPU worker killed so that takeovers show), then the render, and everything stopped again. It
needs Debian's ``prometheus`` package (``apt-get install prometheus``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from render_dashboard import ALERTS, DASHBOARD, ROOT, Prometheus, RenderError, load_dashboard, render
from scratch_fleet import ScratchError, ScratchFleet, free_port, wait


class RealRun:
    """A local fleet, a Prometheus scraping its exporter, and a workload, in a temporary folder.

    Args:
        folder: where the settings, the fleet's run folder, the inputs and Prometheus's data go.
        log: where each step is reported.
    """

    def __init__(self, folder: Path, log: Callable[[str], None]) -> None:
        self.folder = folder
        self.log = log
        self.fleet = ScratchFleet(folder, flower_password=base64.b32encode(os.urandom(15)).decode().lower())
        self.prometheus_port = free_port()
        self.prometheus: subprocess.Popen[bytes] | None = None
        self.background: list[subprocess.Popen[bytes]] = []

    def start_prometheus(self) -> Prometheus:
        """A ``prometheus`` process scraping the exporter (and Flower) every second, evaluating alerts.yml."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ScratchError("--run needs the prometheus binary on PATH (apt-get install prometheus)")
        password = self.folder / "flower-password"
        password.write_text(self.fleet.flower_password)
        password.chmod(0o600)
        config = self.folder / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "simfleet", "static_configs": [{"targets": [f"127.0.0.1:{self.fleet.metrics_port}"]}]},
                {"job_name": "flower", "basic_auth": {"username": "simfleet", "password_file": str(password)},
                 "static_configs": [{"targets": [f"127.0.0.1:{self.fleet.flower_port}"]}]},
            ],
        }))  # fmt: skip
        with open(self.folder / "prometheus.log", "wb") as out:
            self.prometheus = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={self.folder / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--storage.tsdb.retention.time=1d"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        prometheus = Prometheus(f"http://127.0.0.1:{self.prometheus_port}")
        wait(prometheus.ready, "Prometheus to be ready", 60)
        wait(lambda: prometheus.query('up{job="simfleet"} == 1', time.time()), "Prometheus to scrape the exporter", 60)
        return prometheus

    def job(self, job_id: str) -> dict[str, Any]:
        """``simfleet job status --json`` of a job."""
        return dict(json.loads(self.fleet.simfleet("job", "status", job_id, "--json")))

    def kill_worker(self, prefix: str) -> str:
        """SIGKILL the local fleet's worker whose node name starts with ``prefix``, its pool processes too."""
        import psutil

        state = json.loads((self.folder / "fleet" / "fleet.json").read_text())
        names = {"gpu0": "gpu-worker-0", "gpu1": "gpu-worker-1", "cpu1": "cpu-worker-1", "cpu2": "cpu-worker-2"}
        wanted = names.get(prefix, prefix)
        process = next((p for p in state["processes"] if p["name"] == wanted), None)
        if process is None:
            raise ScratchError(f"no local fleet process {wanted!r} in fleet.json")
        main = psutil.Process(process["pid"])
        for child in [*main.children(recursive=True), main]:
            child.send_signal(signal.SIGKILL)
        return str(wanted)

    def workload(self, minutes: float) -> None:
        """Lifecycle jobs and a DES study over ``minutes``, a GPU-role and a CPU worker killed on the way.

        The jobs are all the 279-airframe reference fleet over 3,650 days: in one stage of 365 days (seconds each),
        or in stages of 2 days (a minute or so of execute stages, each checkpointed), one of which runs when the
        workload ends, so that the running-jobs panels show it.
        """
        began = time.monotonic()
        inputs = self.folder / "fleet279"
        self.fleet.simfleet(
            "lifecycle", "synth", "--aircraft", "279", "--days", "3650", "--seed", "1", "--out", str(inputs)
        )

        def submit(job_id: str, chunk_days: int) -> None:
            self.fleet.simfleet("lifecycle", "submit", "--fleet", "--inputs", str(inputs), "--chunk-days",
                                str(chunk_days), "--job-id", job_id, "--no-wait")  # fmt: skip
            self.log(f"submitted lifecycle job {job_id} (279 airframes, 3650 days, stages of {chunk_days} days)")

        def running(job_id: str) -> dict[str, Any] | None:
            status = self.job(job_id)
            return status if status.get("state") == "running" and status.get("day", 0) > 0 else None

        submit("long-1", 2)
        time.sleep(5)
        scenario = ROOT / "config" / "scenarios" / "web_search_load_test.yaml"
        self.background.append(
            self.fleet.simfleet_in_background(
                "des", "run", str(scenario), "--fleet", "--replications", "600", name="study"
            )
        )
        self.log("published a DES study of 600 replications (web_search_load_test) to two CPU workers")
        owner = str(wait(lambda: running("long-1"), "job long-1 to run", 120)["owner"])
        time.sleep(5)
        self.log(f"killed {self.kill_worker(owner[:4])}, the owner of long-1: the other GPU worker takes it over")
        time.sleep(20)
        self.log(f"killed {self.kill_worker('cpu2')} during the study: its replications are published again")
        for index in range(1, 4):
            time.sleep(10)
            submit(f"reference-{index}", 365)
        left = minutes * 60 - (time.monotonic() - began)
        time.sleep(max(0.0, left - 25))
        submit("long-2", 2)
        time.sleep(max(0.0, minutes * 60 - (time.monotonic() - began)))

    def stop(self) -> None:
        """Prometheus, the background commands and the fleet stopped."""
        for process in [*self.background, *([self.prometheus] if self.prometheus else [])]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        try:
            self.fleet.simfleet("fleet", "down", timeout_s=120)
        except (ScratchError, subprocess.TimeoutExpired) as exc:
            self.log(f"fleet down: {exc}")


@contextmanager
def _folder(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="simfleet-dashboard-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def real_run(out: Path, minutes: float, keep: bool) -> dict[str, str]:
    """The whole real run (fleet, Prometheus, workload, render); what each panel drew."""

    def log(line: str) -> None:
        print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {line}", flush=True)

    with _folder(keep) as folder:
        run = RealRun(folder, log)
        try:
            log(f"fleet up in {folder}")
            run.fleet.simfleet("fleet", "up", "--cpu-workers", "2", "--gpu-workers", "2", "--concurrency", "1")
            prometheus = run.start_prometheus()
            started = time.time()
            log(f"prometheus on {prometheus.url} scrapes the exporter on :{run.fleet.metrics_port} every second")
            run.workload(minutes)
            end = time.time()
            firing = [alert["metric"]["alertname"] for alert in prometheus.query("ALERTS", end)]
            log(f"alerts pending or firing: {sorted(set(firing)) or 'none'}")
            drawn = render(load_dashboard(DASHBOARD), prometheus, out, start=started - 10, end=end, step=2)
        except ScratchError as exc:
            raise RenderError(str(exc)) from None
        finally:
            run.stop()
        if keep:
            log(f"kept {folder}")
    return drawn
