"""Misused command lines, bad calls of the Python API, and runs stopped by a signal while they write ``--out``."""

from __future__ import annotations

import copy
import math
import random
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fuzz.harness import Case
from tests.fuzz.templates import Templates, previous_output, write_previous, write_yaml

# ----------------------------------------------------------------------------------------------------------- flags

_S = "s.yaml"
FLAG_MISUSES: list[tuple[list[str], str]] = [
    (["des", "run", _S, "--replications", "0"], "--replications"),
    (["des", "run", _S, "--replications", "-1"], "--replications"),
    (["des", "run", _S, "--replications", "x"], "--replications"),
    (["des", "run", _S, "--seed", "-1"], "--seed"),
    (["des", "run", _S, "--seed", str(2**63)], "--seed"),
    (["des", "run", _S, "--seed", str(10**30)], "--seed"),
    (["des", "run", _S, "--processes", "0"], "--processes"),
    (["des", "run", _S, "--processes", "-3"], "--processes"),
    (["des", "run", _S, "--fleet", "--timeout", "0"], "--timeout"),
    (["des", "run", _S, "--fleet", "--timeout", "nan"], "--timeout"),
    (["des", "run", _S, "--priority", "urgent"], "--priority"),
    (["des", "run", _S, "--trace", "/proc/no/trace.txt"], "--trace"),
    (["des", "run", _S, "--trace", "."], "--trace"),
    (["des", "run", "nowhere.yaml"], "nowhere.yaml"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "-1"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "nan"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "inf"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "0"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--rel-tol", "0"], "--rel-tol"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--rel-tol", "-1"], "--rel-tol"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--rel-tol", "nan"], "--rel-tol"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--replications", "0"], "--replications"),
    (["des", "sla", _S, "--request-type", "nope", "--threshold", "1"], "nope"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--metric", "p100"], "--metric"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--out", "/proc/x/y"], "--out"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--out", "afile"], "--out"),
    (["des", "sla", _S], "--threshold"),
    (["des", "sweep", _S, "--rates", "0"], "--rates"),
    (["des", "sweep", _S, "--rates", "-5"], "--rates"),
    (["des", "sweep", _S, "--rates", "nan"], "--rates"),
    (["des", "sweep", _S, "--rates", "inf"], "--rates"),
    (["des", "sweep", _S, "--rates", "1", "--replications", "-1"], "--replications"),
    (["des", "sweep", _S, "--rates", "1", "--request-type", "nope"], "nope"),
    (["des", "sweep", _S, "--rates", "1", "--threshold", "-1"], "--threshold"),
    (["des", "sweep", _S, "--rates", "1", "--out", "afile"], "--out"),
    (["des", "sweep", _S, "--rates", "1", "--out", "/proc/x"], "--out"),
    (["des", "sweep", _S], "--rates"),
    (["des", "run", _S, "--precision", "0"], "--precision"),
    (["des", "run", _S, "--precision", "150%"], "--precision"),
    (["des", "run", _S, "--precision", "abc"], "--precision"),
    (["des", "run", _S, "--max-replications", "5"], "--max-replications"),
    (["des", "sla", _S, "--sla", "web-search:p90<3"], "--sla"),
    (["des", "sla", _S, "--sla", "nope:p95<3"], "nope"),
    (["des", "sla", _S, "--sla", "web-search:p95<-3"], "--sla"),
    (["des", "sla", _S, "--sla", "web-search:p95<3", "--replications", "1"], "--replications"),
    (["des", "capacity", _S, "--sla", "web-search:p95<10", "--resource", "network"], "step"),
    (["des", "capacity", _S, "--sla", "web-search:p95<10", "--resource", "gpu"], "gpu"),
    (["des", "capacity", _S, "--sla", "web-search:p95<10", "--cost", "npu=-1"], "--cost"),
    (["des", "capacity", _S, "--sla", "web-search:p95<10", "--cost", "npu"], "--cost"),
    (["des", "capacity", _S, "--sla", "web-search:p95<10", "--max-steps", "0"], "--max-steps"),
    (["des", "bottleneck", _S, "--sla", "web-search:p101<3"], "--sla"),
    (["des", "bottleneck", _S, "--replications", "1"], "--replications"),
    (["des", "validate", "--scale", "0"], "--scale"),
    (["des", "validate", "--scale", "-1"], "--scale"),
    (["des", "validate", "--scale", "nan"], "--scale"),
    (["des", "frobnicate"], "frobnicate"),
    (["lifecycle", "run", "--inputs", "in", "--days", "0"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--days", "-1"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--days", "99999999"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--days", "1e3"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--chunk-days", "0"], "--chunk-days"),
    (["lifecycle", "run", "--inputs", "in", "--chunk-days", "-7"], "--chunk-days"),
    (["lifecycle", "run", "--inputs", "in", "--backend", "nope"], "nope"),
    (["lifecycle", "run", "--inputs", "in", "--log", "some"], "--log"),
    (["lifecycle", "run", "--inputs", "in", "--out", "/proc/x"], "--out"),
    (["lifecycle", "run", "--inputs", "in", "--out", "afile"], "--out"),
    (["lifecycle", "run", "--inputs", "in", "--out", "/dev/null/x"], "--out"),
    (["lifecycle", "run", "--inputs", "nowhere"], "nowhere"),
    (["lifecycle", "run", "--inputs", "afile"], "afile"),
    (["lifecycle", "run"], "--inputs"),
    (["lifecycle", "synth", "--aircraft", "0", "--out", "o"], "--aircraft"),
    (["lifecycle", "synth", "--aircraft", "-5", "--out", "o"], "--aircraft"),
    (["lifecycle", "synth", "--days", "0", "--out", "o"], "--days"),
    (["lifecycle", "synth", "--days", "99999999", "--out", "o"], "--days"),
    (["lifecycle", "synth", "--seed", "-1", "--out", "o"], "--seed"),
    (["lifecycle", "synth", "--version-date", "2025-13-01", "--out", "o"], "--version-date"),
    (["lifecycle", "synth", "--version-date", "2200-01-01", "--out", "o"], "--version-date"),
    (["lifecycle", "synth", "--out", "afile"], "--out"),
    (["lifecycle", "synth", "--out", "/proc/x"], "--out"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", "../../x"], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", ""], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", "a/b"], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", "x" * 65], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--days", "0"], "--days"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--chunk-days", "0"], "--chunk-days"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--timeout", "-1"], "--timeout"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--backend", "nope"], "--backend"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--inputs-version", "x"], "--inputs"),
    (["lifecycle", "submit", "--fleet", "--inputs-version", "2025-01-01/x"], "--inputs-version"),
    (["lifecycle", "submit", "--fleet", "--inputs-version", "2025-01-01/-1"], "--inputs-version"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--out", "afile"], "--out"),
    (["lifecycle", "submit", "--inputs", "in"], "--fleet"),
    (["job", "status", "../../x"], "../../x"),
    (["job", "cancel", "a b"], "a b"),
    (["job", "delete", ""], "id"),
    (["job", "export", "../x", "--out", "o"], "../x"),
    (["study", "status", "../../x"], "../../x"),
    (["study", "cancel", "x" * 100], "id"),
    (["checkpoint", "show", "../x"], "../x"),
    (["db", "import-inputs", "in", "--version-id", "-1"], "--version-id"),
    (["db", "import-inputs", "in", "--version-id", str(2**40)], "--version-id"),
    (["db", "import-inputs", "in", "--version-id", "x"], "--version-id"),
    (["db", "import-inputs", "nowhere", "--version-id", "1"], "nowhere"),
    (["des", "run", _S, "--no-such-flag"], "--no-such-flag"),
    ([], "COMMAND"),
]
"""Command-line misuses, each with what its error must name."""


def flag_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Every misuse of :data:`FLAG_MISUSES` once, in the run's order (``count`` caps them)."""
    scenario = templates.scenarios["web_search_load_test"]

    def setup(folder: Path) -> None:
        write_yaml(folder / _S, scenario)
        shutil.copytree(templates.inputs_csv, folder / "in")
        (folder / "afile").write_text("a file, not a folder\n")

    misuses = list(FLAG_MISUSES)
    rng.shuffle(misuses)
    for argv, named in misuses[:count]:
        out = "out" if "--out" in argv and argv[argv.index("--out") + 1] == "out" else None
        yield Case("flags", " ".join(argv)[:80], argv=argv, setup=setup, names=(named,), out=out)


# ------------------------------------------------------------------------------------------------------------- API


def api_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Bad calls of the Python API: each must be refused before anything is sent."""
    scenario = "s.yaml"
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("run_lifecycle", {"inputs": "in", "job_id": "../../x"}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "job_id": ""}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "job_id": "a/b"}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "job_id": 5}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": 0}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": -1}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": 1.5}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": "7"}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": True}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "days": 0}, "days"),
        ("run_lifecycle", {"inputs": "in", "days": 10**9}, "days"),
        ("run_lifecycle", {"inputs": "in", "days": "10"}, "days"),
        ("run_lifecycle", {"inputs": "in", "days": math.nan}, "days"),
        ("run_lifecycle", {"inputs": "in", "backend": "nope"}, "backend"),
        ("run_lifecycle", {"inputs": "in", "backend": 3}, "backend"),
        ("run_lifecycle", {"inputs": "in", "log": "some"}, "log"),
        ("run_lifecycle", {"inputs": "in", "priority": "urgent"}, "priority"),
        ("run_lifecycle", {"inputs": "in", "via": "carrier-pigeon"}, "via"),
        ("run_lifecycle", {"inputs": "in", "sink": "s3"}, "sink"),
        ("run_lifecycle", {"inputs": "nowhere"}, "nowhere"),
        ("run_lifecycle", {"inputs": 42}, "inputs"),
        ("run_des", {"scenario": scenario, "replications": 0}, "replications"),
        ("run_des", {"scenario": scenario, "replications": -3}, "replications"),
        ("run_des", {"scenario": scenario, "replications": 2.5}, "replications"),
        ("run_des", {"scenario": scenario, "seed": -1}, "seed"),
        ("run_des", {"scenario": scenario, "seed": 2**64}, "seed"),
        ("run_des", {"scenario": scenario, "seed": "1"}, "seed"),
        ("run_des", {"scenario": scenario, "priority": "urgent"}, "priority"),
        ("run_des", {"scenario": "nowhere.yaml"}, "nowhere.yaml"),
        ("run_des", {"scenario": 42}, "scenario"),
        ("run_des", {"scenario": {"name": "x"}}, "horizon_s"),
        ("sla_search", {"scenario": scenario, "request_type": "nope", "metric": "p95", "threshold_s": 1.0}, "nope"),
        ("sla_search", {"scenario": scenario, "request_type": "web-search", "metric": "p95", "threshold_s": -1.0},
         "threshold"),
        ("sla_search", {"scenario": scenario, "request_type": "web-search", "metric": "p101", "threshold_s": 1.0},
         "metric"),
        ("sla_search", {"scenario": "nowhere.yaml", "request_type": "web-search", "metric": "p95",
                        "threshold_s": 1.0}, "nowhere.yaml"),
        ("job", {"job_id": "../../x"}, "job_id"),
        ("job", {"job_id": None}, "job_id"),
        ("study", {"study_id": "../x"}, "study_id"),
    ]  # fmt: skip
    scenario_data = templates.scenarios["web_search_load_test"]

    def setup(folder: Path) -> None:
        write_yaml(folder / scenario, scenario_data)
        shutil.copytree(templates.inputs_csv, folder / "in")

    rng.shuffle(calls)
    for function, kwargs, named in calls[:count]:
        yield Case("api", f"{function}({kwargs})"[:90], call=(function, kwargs), setup=setup, names=(named,))


# ------------------------------------------------------------------------------------------------------ interrupts


def interrupt_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Runs stopped by SIGINT or SIGTERM while they write ``--out``: the previous output or nothing is left."""
    scenario = copy.deepcopy(templates.scenarios["mixed_workload"])
    scenario["horizon_s"] = 72_000  # the compiled kernel runs a replication in about 0.3 s: still going at the signal
    for _ in range(count):
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        after = rng.uniform(0.2, 1.5)
        previous = rng.random() < 0.5
        kind = rng.choice(["lifecycle", "sweep", "sla", "synth"])
        big = templates.big_inputs if kind == "lifecycle" else None

        argv = {
            "lifecycle": ["lifecycle", "run", "--inputs", "in", "--out", "out", "--chunk-days", "30"],
            "sweep": ["des", "sweep", _S, "--rates", "30", "60", "90", "--replications", "2", "--processes", "1",
                      "--out", "out"],
            "sla": ["des", "sla", _S, "--request-type", "web-search", "--threshold", "20", "--replications", "2",
                    "--processes", "1", "--out", "out"],
            "synth": ["lifecycle", "synth", "--aircraft", "2000", "--days", "3650", "--out", "out"],
        }[kind]  # fmt: skip

        def setup(folder: Path, big: Path | None = big, previous: bool = previous, argv: list[str] = argv) -> None:
            write_yaml(folder / _S, scenario)
            if big is not None:
                (folder / "in").symlink_to(big)
            if previous:
                write_previous(folder, "out", argv)

        name = f"{kind} stopped by {signal.Signals(sig).name} after {after:.1f} s"
        yield Case("interrupt", name, argv=argv, expect="either", setup=setup, out="out", interrupt=(sig, after),
                   previous=previous_output(argv) if previous else None)  # fmt: skip
