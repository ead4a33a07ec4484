"""How the command line ends when things go wrong around a command: a reader that goes away, SIGTERM, a defect.

The exit codes are the contract of ``docs/errors.md``; these tests run the ``simfleet`` command as a user would, in a
subprocess, and look at what the user sees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import yaml

from simfleet.producer import cli
from simfleet.producer.cli import des as des_commands
from simfleet.shared.errors import ConfigError
from simfleet.shared.outputs import atomic_output

REPO = Path(__file__).resolve().parents[2]
SIMFLEET = [sys.executable, "-m", "simfleet.producer.cli"]


def _scenario(tmp_path: Path, horizon_s: float) -> Path:
    data = yaml.safe_load((REPO / "config" / "scenarios" / "mixed_workload.yaml").read_text())
    data.update(horizon_s=horizon_s, warmup_s=0, replications=1)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_reader_that_goes_away_gets_no_broken_pipe_traceback(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, 60)
    command = " ".join([*SIMFLEET, "des", "run", str(scenario), "--processes", "1", "--json"])
    done = subprocess.run(f"set -o pipefail; {command} | head -c 20", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert len(done.stdout) == 20
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode in (0, cli.EXIT_BROKEN_PIPE)


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [(signal.SIGTERM, cli.EXIT_TERMINATED, "terminated"), (signal.SIGINT, cli.EXIT_INTERRUPTED, "interrupted")],
)
def test_a_stopped_run_leaves_the_previous_output_whole(tmp_path: Path, sig: int, code: int, said: str) -> None:
    scenario = _scenario(tmp_path, 3600)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text("previous")
    process = subprocess.Popen(
        # On the Python engine, whose sweep lasts long enough to be stopped half-way (the kernel's takes 0.1 s).
        [*SIMFLEET, "des", "sweep", str(scenario), "--rates", "30", "60", "--processes", "1", "--out", str(out),
         "--engine", "python"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert said in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]
    assert (out / "sweep.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.yaml"]


def test_a_defect_is_one_line_with_its_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    def broken(args: object) -> int:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(des_commands, "_validate", broken)
    monkeypatch.delenv("SIMFLEET_DEBUG", raising=False)
    assert cli.main(["des", "validate"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err and "Traceback" not in err


def test_an_unwritable_out_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="--out"), atomic_output(tmp_path / "afile", flag="--out"):
        raise AssertionError("the work must not start")
    with pytest.raises(ConfigError, match="--out"), atomic_output("/proc/simfleet/out", flag="--out"):
        raise AssertionError("the work must not start")


def test_a_rerun_replaces_the_output_as_a_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    owned = ("a.parquet", "b.parquet")
    with atomic_output(out, flag="--out", owned=owned) as staging:
        (staging / "a.parquet").write_text("first")
        (staging / "b.parquet").write_text("first")
    with atomic_output(out, flag="--out", owned=owned) as staging:
        assert not out.samefile(staging)
        (staging / "a.parquet").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_folder_holding_other_files_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the user's")
    with pytest.raises(ConfigError, match=r"holds notes\.txt"), atomic_output(tmp_path, flag="--out", owned=["a"]):
        raise AssertionError("the work must not start")
    assert (tmp_path / "notes.txt").read_text() == "the user's"


def test_a_failed_run_keeps_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "trace.txt"
    out.write_text("previous")
    with pytest.raises(RuntimeError), atomic_output(out, flag="--trace", kind="file") as staging:
        staging.write_text("half")
        raise RuntimeError("the run failed")
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.txt"]


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    leftover = tmp_path / f".out.partial-{child.pid}-deadbeef"
    leftover.mkdir()
    (leftover / "half.parquet").write_text("half")
    alive = tmp_path / f".out.partial-{os.getpid()}-cafecafe"
    alive.mkdir()
    with atomic_output(tmp_path / "out", flag="--out") as staging:
        (staging / "whole.parquet").write_text("whole")
    assert not leftover.exists()
    assert alive.exists(), "a staging folder of a live process is not touched"


def test_a_signal_wrapped_by_other_code_is_still_an_interruption(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def stopped_inside_an_import(args: object) -> int:
        try:
            raise cli.Terminated
        except cli.Terminated as exc:  # what Python does to an exception raised in __set_name__ while a class is built
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(des_commands, "_validate", stopped_inside_an_import)
    assert cli.main(["des", "validate"]) == cli.EXIT_TERMINATED
    assert capsys.readouterr().err == "simfleet: terminated\n"


@pytest.mark.parametrize(("stop", "code", "said"), [(KeyboardInterrupt, cli.EXIT_INTERRUPTED, "interrupted"),
                                                      (cli.Terminated, cli.EXIT_TERMINATED, "terminated")])  # fmt: skip
def test_a_signal_that_lands_in_a_callback_is_not_printed_and_not_lost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stop: type[BaseException], code: int, said: str
) -> None:
    """Ctrl-C during an import can land in the module lock's weakref callback, where Python only prints it."""

    class Lock:
        pass

    def stopped_inside_a_callback(args: object) -> int:
        lock = Lock()
        reference = weakref.ref(lock, lambda _: (_ for _ in ()).throw(stop()))
        del lock  # the callback raises; Python cannot propagate it and calls sys.unraisablehook
        assert reference() is None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the interruption comes back at the next instruction
            pass
        return 0

    monkeypatch.setattr(des_commands, "_validate", stopped_inside_a_callback)
    hook = sys.unraisablehook
    assert cli.main(["des", "validate"]) == code
    assert capsys.readouterr().err == f"simfleet: {said}\n"
    assert sys.unraisablehook is hook, "the hook is the command's only"
