"""Running fuzz cases as a user would meet them, and sorting what happened.

A :class:`Case` is one command line (``simfleet ...``) or one call of the Python API, with the files it needs,
made by a generator (:mod:`tests.fuzz.generators`). Each case runs in its own process, forked from a server that
has imported simfleet once (so a case costs milliseconds, not an interpreter start), in its own folder, under a
memory limit and a deadline. Its outcome is one of:

``clean error``
    a non-zero exit with one ``simfleet: ...`` line (or argparse's usage error), no traceback; for the API, an
    exception of simfleet's own tree that is not "the fleet is unreachable" (the calls are checked before anything
    is sent, so a bad call never gets as far as the broker).
``accepted``
    exit 0 (or an API call that returned); a failure when the case is known to be bad (``expect="error"``).
``crash``
    a traceback, an internal error (exit 70), a foreign exception from the API, death by a signal, or memory
    exhausted.
``hang``
    still running at the deadline (then killed).
``partial write``
    an output (``--out``) that is neither the previous complete one nor absent after a failure, an output missing
    after success, or a staging entry left beside it.
``bad output``
    ``--json`` output that is not strict JSON (``NaN``, ``Infinity``) or an error that does not name what the case
    says it must (the file, key or flag).
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

OUTCOMES = ("clean error", "accepted", "crash", "hang", "partial write", "bad output")
FAILURES = ("crash", "hang", "partial write", "bad output")
PREVIOUS = "PREVIOUS_OUTPUT"
"""The content of a file a case may put in its ``out`` before running, as an earlier run of the command would
(``out/mp2/part``, ``out/sweep.json``): after a failure it must still be there, alone; after a success it is gone."""

MEMORY_LIMIT_BYTES = 6 * 2**30
"""Address space of one case: a run that would allocate more must have refused first (``days``, DAG size)."""

UNREACHABLE_REDIS = "redis://:x@127.0.0.1:9/0"


@dataclass
class Case:
    """One fuzz case.

    Attributes:
        family: the generator (``scenario``, ``inputs``, ``flags``, ``api``, ``interrupt``).
        name: what was mutated, for the report.
        argv: a ``simfleet`` command line, run in the case's folder.
        call: or an API call: the name of a :class:`~simfleet.producer.fleet.client.Fleet` method and its keyword
            arguments, called on a client whose Redis is unreachable.
        expect: ``error`` when the case is known to be bad; ``either`` when the mutation may leave it valid.
        setup: makes the case's files in its folder (runs in the parent, before the case).
        out: the output the command writes, relative to the folder, checked for partial writes.
        names: substrings the error message must contain (the file, key or flag).
        interrupt: a signal to send, and after how many seconds, to a run that must leave no partial output.
        previous: the file, under ``out``, that stands for an earlier output (holding :data:`PREVIOUS`).
    """

    family: str
    name: str
    argv: list[str] | None = None
    call: tuple[str, dict[str, Any]] | None = None
    expect: Literal["error", "either"] = "error"
    setup: Callable[[Path], None] | None = None
    out: str | None = None
    names: tuple[str, ...] = ()
    interrupt: tuple[int, float] | None = None
    previous: str | None = None


@dataclass
class Result:
    """What one case did."""

    case: Case
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    stderr: str = ""


@dataclass
class Report:
    """Outcomes per family, and the failing cases."""

    results: list[Result] = field(default_factory=list)

    @property
    def failures(self) -> list[Result]:
        """The cases whose outcome is a failure."""
        return [r for r in self.results if r.outcome in FAILURES]

    def table(self) -> str:
        """The outcome table: one row per family and a total."""
        families = sorted({r.case.family for r in self.results})
        width = max([len("family"), *map(len, families)])
        head = f"{'family':<{width}}  {'cases':>6}  " + "  ".join(f"{o:>13}" for o in OUTCOMES)
        lines = [head, "-" * len(head)]
        for name in [*families, "total"]:
            chosen = [r for r in self.results if name in ("total", r.case.family)]
            counts = Counter(r.outcome for r in chosen)
            lines.append(f"{name:<{width}}  {len(chosen):>6}  " + "  ".join(f"{counts[o]:>13}" for o in OUTCOMES))
        slowest = max(self.results, key=lambda r: r.seconds, default=None)
        if slowest is not None:
            lines.append(f"slowest case: {slowest.seconds:.1f} s ({slowest.case.family}: {slowest.case.name})")
        return "\n".join(lines)

    def describe_failures(self, limit: int = 30) -> str:
        """The failing cases, with their command and what went wrong."""
        lines = []
        for r in self.failures[:limit]:
            what = " ".join(r.case.argv) if r.case.argv else repr(r.case.call)
            lines.append(f"[{r.outcome}] {r.case.family}: {r.case.name}\n    {what}\n    {r.detail}")
            lines.extend(f"    | {line}" for line in r.stderr.strip().splitlines()[-6:])
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the child process


def _child(case_dir: str, argv: list[str] | None, call: tuple[str, dict[str, Any]] | None) -> None:
    """Run one case in this process (forked from the server) and leave ``result.json`` in its folder."""
    began = time.monotonic()
    # A case is a command run in a terminal, where Ctrl-C raises KeyboardInterrupt; a runner started in the
    # background of a shell (``make fuzz &``) has SIGINT ignored, and its children would inherit that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(case_dir)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    os.environ["SIMFLEET_BROKER_URL"] = UNREACHABLE_REDIS
    os.environ["SIMFLEET_RESULT_BACKEND"] = UNREACHABLE_REDIS
    os.environ["SIMFLEET_REDIS_RETRY_S"] = "0.5"
    os.environ.pop("SIMFLEET_CONFIG", None)
    out = os.open("stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open("stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
    result: dict[str, Any]
    try:
        if argv is not None:
            from simfleet.producer.cli import main

            Path("started").touch()  # an interrupt is timed from here, not from the fork
            try:
                result = {"kind": "exit", "code": main(argv)}
            except SystemExit as exc:
                result = {"kind": "exit", "code": exc.code if isinstance(exc.code, int) else 2}
        else:
            assert call is not None
            from simfleet.producer.fleet.client import Fleet

            try:
                with Fleet.from_settings() as fleet:  # its Redis is unreachable: a call that gets as far fails
                    getattr(fleet, call[0])(**call[1])
                result = {"kind": "returned"}
            except Exception as exc:
                from simfleet.shared.errors import FleetUnavailable, SimfleetError

                result = {
                    "kind": "raised",
                    "type": type(exc).__name__,
                    "ours": isinstance(exc, SimfleetError),
                    "sent": isinstance(exc, FleetUnavailable),
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                }
    except BaseException as exc:  # what escapes the command line is a crash, whatever it is
        result = {"kind": "escaped", "type": type(exc).__name__, "traceback": traceback.format_exc()}
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    result["seconds"] = time.monotonic() - began
    Path("result.json").write_text(json.dumps(result))
    os._exit(0)


_CONTEXT: Any = None


def _noop() -> None:
    """The first process of a run: it waits for the fork server to import simfleet, outside any case's clock."""


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(
            [
                "simfleet.producer.cli",
                "simfleet.producer.fleet.client",
                "simfleet.producer.charts",
                "simfleet.worker.des.engine",
                "simfleet.worker.des.runner",
                "tests.fuzz.kernel_ready",
                "simfleet.worker.lifecycle.run",
                "simfleet.worker.lifecycle.inputs",
                # The command line imports these inside its handlers (so that --help starts fast): loaded once here,
                # a case does not pay for them again.
                "simfleet.worker.des.scenario",
                "simfleet.worker.des.aggregate",
                "simfleet.producer.report",
                "simfleet.producer.sla",
                "simfleet.producer.rate_sweep",
                "simfleet.producer.progress",
                "simfleet.shared.celery_app",
                "simfleet.shared.outputs",
                "celery",
                "kombu",
                "scipy.stats",
                "matplotlib.pyplot",
                "pyarrow.parquet",
                "pyarrow.csv",
                "networkx",
            ]
        )
        first = _CONTEXT.Process(target=_noop)
        first.start()
        first.join()
    return _CONTEXT


# --------------------------------------------------------------------------------------------------- the parent


def run_cases(cases: Sequence[Case], root: Path, *, parallel: int = 2, deadline_s: float = 30.0,
              progress: Callable[[int, int], None] | None = None) -> Report:  # fmt: skip
    """Run ``cases`` (``parallel`` at a time) in folders under ``root`` and return the report."""
    context = _context()
    report = Report()
    pending = list(enumerate(cases))
    running: dict[int, tuple[Case, Any, Path, float, bool]] = {}
    while pending or running:
        while pending and len(running) < parallel:
            index, case = pending.pop(0)
            case_dir = root / f"case-{index:05d}"
            case_dir.mkdir(parents=True)
            if case.setup is not None:
                case.setup(case_dir)
                case.setup = None  # its closure may hold megabytes of input: free it once the files are made
            process = context.Process(target=_child, args=(str(case_dir), case.argv, case.call), daemon=False)
            process.start()
            running[index] = (case, process, case_dir, time.monotonic(), False)
        time.sleep(0.005)
        for index in list(running):
            case, process, case_dir, started, signalled = running[index]
            elapsed = time.monotonic() - started
            if (
                case.interrupt is not None
                and not signalled
                and elapsed >= case.interrupt[1]
                and _started_for(case_dir) >= 0.05
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, case.interrupt[0])
                running[index] = (case, process, case_dir, started, True)
            if process.is_alive() and elapsed < deadline_s:
                continue
            hung = process.is_alive()
            if hung:
                _kill_tree(process.pid)
            process.join()
            del running[index]
            result = classify(case, case_dir, hung=hung, exitcode=process.exitcode, seconds=elapsed)
            report.results.append(result)
            if result.outcome not in FAILURES:
                shutil.rmtree(case_dir, ignore_errors=True)
            if progress is not None:
                progress(len(report.results), len(cases))
    return report


def _started_for(case_dir: Path) -> float:
    """Seconds since the case's command line began (0 before), so that a signal lands in the command, not in the
    fork server's child still getting ready."""
    try:
        return time.time() - (case_dir / "started").stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _kill_tree(pid: int) -> None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    for kid in kids:
        _kill_tree(int(kid))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def classify(case: Case, case_dir: Path, *, hung: bool, exitcode: int | None, seconds: float) -> Result:
    """Sort one finished (or killed) case into an outcome."""
    stderr = _read(case_dir / "stderr")
    stdout = _read(case_dir / "stdout")

    def result(outcome: str, detail: str = "") -> Result:
        return Result(case, outcome, detail, seconds, stderr)

    if hung:
        return result("hang", f"still running after {seconds:.0f} s")
    if not (case_dir / "result.json").exists():
        return result("crash", f"the process died (exit status {exitcode}) without finishing")
    outcome = json.loads((case_dir / "result.json").read_text())
    seconds = outcome.get("seconds", seconds)  # the case's own time, without the parent's pauses
    kind = outcome["kind"]
    if kind == "escaped":
        return result("crash", f"{outcome['type']} escaped the command line")
    if "Traceback (most recent call last)" in stderr:
        return result("crash", "a traceback was printed")
    if kind == "raised":
        if not outcome["ours"]:
            return result("crash", f"{outcome['type']}: {outcome['message'][:200]}")
        if outcome["sent"]:
            return result("bad output", "the bad call was not refused before it went to the fleet")
        return _named(result, case, outcome["message"])
    if kind == "returned":
        return result("accepted") if case.expect == "either" else result("bad output", "a bad call was accepted")
    code = outcome["code"]
    if code == 70:
        return result("crash", "internal error (exit 70)")
    written = _check_output(case, case_dir, succeeded=code == 0)
    if written:
        return result("partial write", written)
    if code == 0:
        if case.expect == "error":
            return result("bad output", "a known-bad input was accepted (exit 0)")
        if "--json" in (case.argv or []):
            try:
                json.loads(stdout, parse_constant=_refuse_constant)
            except ValueError as exc:
                return result("bad output", f"--json printed invalid JSON: {exc}")
        return result("accepted")
    if case.interrupt is None and not stderr.strip():
        return result("bad output", f"exit {code} with nothing said on stderr")
    return _named(result, case, stderr)


def _named(result: Callable[..., Result], case: Case, message: str) -> Result:
    missing = [name for name in case.names if name not in message]
    if missing:
        return result("bad output", f"the error does not name {missing}")
    return result("clean error")  # type: ignore[no-any-return]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_output(case: Case, case_dir: Path, *, succeeded: bool) -> str:
    """A description of a partial write, or ``""``."""
    if case.out is None:
        return ""
    out = case_dir / case.out
    leftovers = [p.name for p in out.parent.glob(f".{out.name}.*")] if out.parent.exists() else []
    if leftovers:
        return f"staging entries left beside {case.out}: {leftovers}"
    marker = out / case.previous if case.previous else None
    if succeeded:
        if not out.exists():
            return f"exit 0 but {case.out} was not written"
        if marker is not None and marker.is_file() and _read(marker) == PREVIOUS:
            return f"{case.out} still holds the previous output beside the new one (mixed runs)"
        return ""
    if not out.exists():
        return ""
    if out.is_file():
        return "" if _read(out) == PREVIOUS else f"a failed run left the file {case.out}"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    if not files:
        return ""
    if marker is not None and files == [case.previous] and _read(marker) == PREVIOUS:
        return ""
    return f"a failed run left {case.out} with {files[:5]}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def summary_line(report: Report) -> str:
    """One line: cases, failures, time."""
    total = sum(r.seconds for r in report.results)
    return f"{len(report.results)} cases, {len(report.failures)} failures, {total:.0f} s of case time"


def select(cases: Iterable[Case], count: int, seed: int) -> list[Case]:
    """``count`` cases spread over the families, chosen with ``seed`` (all of them when there are fewer)."""
    import random

    chosen = list(cases)
    if len(chosen) <= count:
        return chosen
    return random.Random(seed).sample(chosen, count)
