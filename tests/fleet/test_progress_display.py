"""The progress display as a user sees it: rich's bar on a terminal, plain lines with elapsed and ETA elsewhere,
and the answer on stdout the same either way."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from simfleet.producer.progress import ProgressBar

SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "mixed_workload.yaml"
COMMAND = [sys.executable, "-m", "simfleet.producer.cli", "des", "run", str(SCENARIO), "--fleet", "--replications",
           "6", "--json"]  # fmt: skip


def _run_with_stderr_on_a_terminal() -> tuple[str, str]:
    """The command with stderr on a pseudo-terminal (as in a shell) and stdout in a file: (stdout, terminal text).

    Not a pipe: the answer is larger than a pipe's buffer, and the child would block writing it while this process
    waits for the terminal to close.
    """
    leader, follower = pty.openpty()
    with tempfile.TemporaryFile() as answer:
        process = subprocess.Popen(COMMAND, stdout=answer, stderr=follower, env={**os.environ, "COLUMNS": "160"})
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(60) == 0, shown.decode(errors="replace")
        answer.seek(0)
        stdout = answer.read().decode()
    os.close(leader)
    return stdout, shown.decode(errors="replace")


@pytest.mark.timeout(240)
def test_fleet_study_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere(fleet, start_worker):
    start_worker(concurrency=2)
    piped = subprocess.run(COMMAND, capture_output=True, text=True, check=False)
    assert piped.returncode == 0, piped.stderr
    plain = [line for line in piped.stderr.splitlines() if "replications done" in line]
    assert plain, piped.stderr
    assert all(" elapsed " in line and " ETA " in line and "\x1b" not in line for line in plain)
    assert plain[-1].startswith("100.0%") and "6/6 replications done" in plain[-1]

    stdout, terminal = _run_with_stderr_on_a_terminal()
    assert "━" in terminal and "ETA" in terminal and "6/6 replications done" in terminal  # rich's bar, redrawn
    assert "\x1b[" in terminal
    # the answer is the same JSON either way: the display never reaches stdout
    on_terminal, on_pipe = json.loads(stdout), json.loads(piped.stdout)
    assert on_terminal["types"] == on_pipe["types"] and on_terminal["resources"] == on_pipe["resources"]


def test_plain_lines_count_elapsed_time_and_estimate_the_rest_from_the_pace_so_far():
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar(out, plain_every_s=5.0, clock=lambda: now[0])
    for second in range(0, 41):
        now[0] = float(second)
        bar.update(second * 2.5, f"day {second * 25}/1000")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "  0.0%  elapsed 0:00  ETA -  day 0/1000"  # no pace yet, so no estimate
    assert "  50.0%  elapsed 0:20  ETA 0:20  day 500/1000" in [f" {line}" for line in lines]
    assert lines[-1] == "100.0%  elapsed 0:40  ETA 0:00  day 1000/1000"
    assert len(lines) == 9  # one line every 5 s, not one per update
