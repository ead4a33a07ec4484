"""Every command and code block shown in README.md and docs/*.md runs as shown, so the documents cannot drift.

What is run. Each fenced block names its language (a bare fence fails here). ```sh (and ```bash) blocks are real
commands, run with ``bash -e -o pipefail`` from the repository root, ``.venv/bin/simfleet ...``; ```python blocks are
real Python, run by the project's interpreter from the same place. ```sql blocks starting with ``-- name:`` are the BI
queries of docs/bi.md, which tests/clickhouse/test_bi.py runs against exported data. Everything else (```text for
synopses with placeholders and for output, ```yaml, ```json, unnamed ```sql, ...) is shown only; a block that needs
Docker, Kubernetes, a GPU or another machine is written as one of those.

Where. All documents run in order (README.md, then docs/*.md by name; the blocks of a document in their order) in one
scratch copy of the repository: its top-level entries are links to this checkout's, ``.venv`` is this interpreter's
environment, and ``runs/`` is new and empty, so whatever a block writes under ``runs/`` lands in the scratch copy. A
later block may use what an earlier one wrote (the README's ``runs/fleet279``). Settings are the shipped
``config/fleet.yaml`` with every port moved to a free one by ``SIMFLEET_...`` overrides (``127.0.0.1:5555`` written in a
block is rewritten to the port in use), so the test can run beside other fleets.

The fleet. A block marked ``<!-- docs-test: needs fleet -->`` (an HTML comment on the line before the fence) runs with
the local fleet up: the first such block starts it (``simfleet fleet up`` in the scratch copy) and it stays up until
the end (so a block shows ``fleet up`` and ``fleet down`` in its text, not in its commands).

What is checked. Each block exits 0, or N where marked ``<!-- docs-test: exit N -->``. A ```text block marked
``<!-- docs-test: output -->`` right after a runnable block is that block's output: each of its lines (``...`` lines
aside) must appear in what the block printed, with timings, rates, sizes and percentages masked. A block marked
``<!-- docs-test: skip REASON -->`` is not run; ``test_every_block_is_run_or_says_why_not`` lists each one with its
reason (``pytest -ra`` shows them): only long commands that CI or ``make demo`` already run are skipped so.

The runnable blocks run in two tests: the documents that use the fleet (one fleet serves them all, whichever
pytest-xdist process runs the test), and the others, in a scratch copy of their own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from simfleet.shared.settings import ENV_PREFIX, Settings, load_settings
from tests.conftest import free_port

from .blocks import ROOT, Block, documents, missing_lines, read_blocks

HANG_GUARD_S = 300  # per block: only there so that a hung command fails the test instead of blocking the suite
NOT_LINKED = {".git", ".venv", "runs", "build", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
UNREADABLE: list[str] = []
ALL_BLOCKS = [block for path in documents() for block in read_blocks(path, UNREADABLE)]


# ------------------------------------------------------------------------------------------ the scratch checkout


LOCAL_ADDRESS = re.compile(r"(127\.0\.0\.1|localhost):(\d+)\b")


def settings_leaves(settings: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every value of the settings: its dotted key, its own name and the value."""
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if dataclasses.is_dataclass(value):
            yield from settings_leaves(value, f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}", item.name, value


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "__")


class Placement:
    """Free ports for every port of the shipped settings, as ``SIMFLEET_...`` overrides and a text rewrite.

    A port is an integer setting named ``port`` or ``*_port`` (``flower.port``, ``local_fleet.redis_port``, and
    any added later); a string setting naming a local address (``redis://:pw@127.0.0.1:6390/0``) is rewritten.
    """

    def __init__(self, shipped: Settings) -> None:
        self.run_dir = shipped.local_fleet.run_dir
        ports = {key: value for key, name, value in settings_leaves(shipped)
                 if type(value) is int and re.search(r"(^|_)port$", name)}  # fmt: skip
        self.moved = {port: free_port() for port in set(ports.values())}
        self.env = {env_name(key): str(self.moved[port]) for key, port in ports.items()}
        for key, _, value in settings_leaves(shipped):
            if isinstance(value, str) and LOCAL_ADDRESS.search(value):
                self.env[env_name(key)] = self.rewrite(value)

    def rewrite(self, text: str) -> str:
        """``127.0.0.1:5555`` (or ``localhost:5555``) becomes the moved port."""
        return LOCAL_ADDRESS.sub(lambda m: f"{m.group(1)}:{self.moved.get(int(m.group(2)), int(m.group(2)))}", text)


@dataclasses.dataclass
class Scratch:
    """The scratch checkout where blocks run, its environment and its fleet."""

    root: Path
    blocks_dir: Path
    env: dict[str, str]
    placement: Placement
    fleet_up: bool = False

    def simfleet(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.root / ".venv" / "bin" / "simfleet"), *args]
        return subprocess.run(command, cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=HANG_GUARD_S)  # fmt: skip

    def start_fleet(self) -> None:
        if not self.fleet_up:
            up = self.simfleet("fleet", "up")
            assert up.returncode == 0, f"simfleet fleet up failed for the docs' blocks:\n{up.stdout}\n{up.stderr}"
            self.fleet_up = True

    def stop_fleet(self) -> None:
        """``fleet down``; if it leaves processes recorded, end them (they are this test's)."""
        state = self.root / self.placement.run_dir / "fleet.json"
        print(f"{self.placement.run_dir}: the fleet's processes used {fleet_cpu_s(state):.1f} s CPU")
        self.simfleet("fleet", "down")
        if state.exists():
            for process in json.loads(state.read_text()).get("processes", []):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(process["pid"]), signal.SIGKILL)


def fleet_cpu_s(state: Path) -> float:
    """CPU time so far of a local fleet's processes and their children (pool processes)."""
    total = 0.0
    for process in json.loads(state.read_text()).get("processes", []) if state.exists() else []:
        with contextlib.suppress(psutil.Error):
            found = psutil.Process(int(process["pid"]))
            for one in [found, *found.children(recursive=True)]:
                times = one.cpu_times()
                total += times.user + times.system
    return total


def venv_link(root: Path) -> None:
    """``.venv`` in the scratch copy: this interpreter's virtual environment, or stand-ins for its two commands."""
    if sys.prefix != sys.base_prefix:
        (root / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        return
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = f'"{sys.executable}"'
    for name, command in (("python", python), ("simfleet", f"{python} -m simfleet.producer.cli")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Scratch]:
    root = tmp_path / "checkout"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED and not entry.name.endswith(".egg-info"):
            (root / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    venv_link(root)
    (root / "runs").mkdir()
    placement = Placement(load_settings(ROOT / "config" / "fleet.yaml", env={}))
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    env.update(placement.env, TMPDIR=str(tmp_path), COLUMNS="120")
    (tmp_path / "blocks").mkdir()
    made = Scratch(root, tmp_path / "blocks", env, placement)
    yield made
    if made.fleet_up:
        made.stop_fleet()


# ---------------------------------------------------------------------------------------------------- running


def children_cpu_s() -> float:
    """CPU time of the processes this test has waited for (the blocks and what they ran, not the fleet's daemons)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_block(scratch: Scratch, block: Block) -> str:
    """Run one block; return what went wrong (empty when it ran as shown)."""
    if block.needs_fleet:
        scratch.start_fleet()
    text = scratch.placement.rewrite(block.text)
    if block.language == "python":
        script = scratch.blocks_dir / f"{block.doc.replace('/', '_')}-{block.line}.py"
        script.write_text(text)
        command = [str(scratch.root / ".venv" / "bin" / "python"), str(script)]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", text]
    started, cpu = time.monotonic(), children_cpu_s()
    try:
        done = subprocess.run(command, cwd=scratch.root, env=scratch.env, capture_output=True, text=True,
                              timeout=HANG_GUARD_S, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"still running after {HANG_GUARD_S} s"
    printed = done.stdout + done.stderr
    print(f"{block.where:<32} {block.language:<7} exit {done.returncode}  {time.monotonic() - started:5.1f} s, "
          f"{children_cpu_s() - cpu:5.1f} s CPU")  # fmt: skip
    problems = []
    if done.returncode != block.exit_code:
        problems.append(f"exit {done.returncode}, the document expects {block.exit_code}")
    if block.expected_output is not None:
        problems += [f"shown output line not printed: {line!r}"
                     for line in missing_lines(block.expected_output.text, printed)]  # fmt: skip
    if problems:
        return "; ".join(problems) + "\n" + "\n".join(printed.splitlines()[-25:])
    return ""


WITH_FLEET = {block.doc for block in ALL_BLOCKS if block.needs_fleet and block.runs}
GROUPS = {
    "documents with fleet blocks": [b for b in ALL_BLOCKS if b.doc in WITH_FLEET],
    "documents without": [b for b in ALL_BLOCKS if b.doc not in WITH_FLEET],
}
"""The blocks in two groups, each in its own scratch copy, so that two pytest-xdist processes share the work: one
group starts the fleet once for all the documents that use it; the other never needs one. A document's blocks stay
together and in order (a later block may use what an earlier one wrote)."""


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("group", list(GROUPS))
def test_every_command_and_code_block_runs_as_shown(scratch: Scratch, group: str) -> None:
    failures = []
    for block in (b for b in GROUPS[group] if b.runs):
        problem = run_block(scratch, block)
        if problem:
            failures.append(f"--- {block.where} ({block.language}): {problem}")
    assert not failures, "blocks of the documents that do not run as shown:\n" + "\n".join(failures)


# ----------------------------------------------------------------------------------------- reading the blocks


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: f"{b.where}:{b.language}")
def test_every_block_is_run_or_says_why_not(block: Block) -> None:
    if block.skip:
        pytest.skip(f"{block.where} not run: {block.skip}")
    if block.language == "python":
        compile(block.text, block.where, "exec")
    elif block.language == "sh":
        syntax = subprocess.run(["bash", "-n", "-c", block.text], capture_output=True, text=True)
        assert syntax.returncode == 0, f"{block.where}: not shell syntax: {syntax.stderr}"
    elif block.named_query:
        assert block.doc == "docs/bi.md", f"{block.where}: named queries belong in docs/bi.md, which test_bi runs"
    assert not (block.needs_fleet or block.exit_code) or block.runs, (
        f"{block.where}: a fleet or exit directive on a block that is not run"
    )


def test_every_block_can_be_read() -> None:
    assert not UNREADABLE, "blocks the docs test cannot read:\n" + "\n".join(UNREADABLE)


def test_the_documents_have_blocks_that_run() -> None:
    ran = [b for b in ALL_BLOCKS if b.runs]
    assert {b.doc for b in ran} >= {"README.md", "docs/operations.md", "docs/fleet.md", "docs/lifecycle_fleet.md"}
    assert any(b.needs_fleet for b in ran) and any(b.expected_output for b in ran)


def test_a_block_that_fails_or_prints_otherwise_than_shown_is_reported(scratch: Scratch, tmp_path: Path) -> None:
    doc = tmp_path / "example.md"
    doc.write_text(
        "```sh\nfalse\necho never\n```\n\n"
        "<!-- docs-test: exit 3 -->\n```python\nprint('left')\nraise SystemExit(3)\n```\n"
        "<!-- docs-test: output -->\n```text\nleft\n```\n\n"
        "```sh\necho 'took 0.25 s'\n```\n<!-- docs-test: output -->\n```text\ntook 9.1 s\nnot printed\n```\n"
    )
    errors: list[str] = []
    blocks = read_blocks(doc, errors, root=tmp_path)
    assert not errors and [b.language for b in blocks] == ["sh", "python", "text", "sh", "text"]
    failing, exiting, printing = (blocks[i] for i in (0, 1, 3))
    assert run_block(scratch, failing).startswith("exit 1, the document expects 0")
    assert run_block(scratch, exiting) == ""
    assert run_block(scratch, printing).startswith("shown output line not printed: 'not printed'")
