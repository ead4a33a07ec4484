"""How long the ``simfleet`` command takes as a whole process, from the shell's point of view.

Run: ``.venv/bin/python benchmarks/bench_cli.py [--repeat 5]``.

Each command is started as a user starts it (the installed ``simfleet`` script), and timed from ``fork`` to exit;
the best of ``--repeat`` runs is shown (the others only add what the machine's other work took):

- ``simfleet --help``: the parser of every command, the worker side's included.
- ``simfleet job status ID``: a job queued on a real Redis server (a throw-away one, no workers); the command reads
  its record and prints it.
- ``simfleet lifecycle run``: the 279 x 3,650 reference fleet (``lifecycle synth`` defaults, Parquet inputs), with
  the default backend and no output: reading the inputs, the run, the summary.

Peers, measured in the same run: ``python -c pass`` (the floor of any Python command), ``celery --help`` (the command
line of the stack the fleet is built on), and what ``simfleet --help`` imported before its families loaded their
engines lazily (scipy.stats, networkx, celery, redis, pyarrow). Targets: ``--help`` under 0.5 s, ``job status``
under 1 s, ``lifecycle run`` under 1.5 s; the exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness import BenchFleet, Verdicts

BIN = Path(sys.executable).parent
SIMFLEET = str(BIN / "simfleet")
EAGER = "import scipy.stats, networkx, celery, redis, pyarrow.parquet"
"""What ``simfleet --help`` imported before (its import profile's largest parts)."""


def best_of(argv: Sequence[str], repeat: int) -> tuple[float, float]:
    """The shortest wall time of ``repeat`` runs of ``argv``, and the CPU time (user + system) of that run.

    The CPU time is shown beside the wall time: on a busy machine the wall time also holds the waits for a core.
    """
    runs = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append((wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime))
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} ended with {done.returncode}: {done.stderr.strip()[-500:]}")
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; the best is shown (default 5)")
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    with BenchFleet() as bench:
        inputs = bench.tmp / "fleet279"
        subprocess.run([SIMFLEET, "lifecycle", "synth", "--out", str(inputs)], check=True, capture_output=True)
        job = bench.fleet.run_lifecycle(inputs=inputs, sink="none")
        config = ["--config", str(bench.config)]
        ours = [
            ("simfleet --help", best_of([SIMFLEET, "--help"], repeat), 0.5),
            ("simfleet job status (a queued job)", best_of([SIMFLEET, *config, "job", "status", job.id], repeat), 1.0),
            ("simfleet lifecycle run, 279 x 3,650",
             best_of([SIMFLEET, "lifecycle", "run", "--inputs", str(inputs)], repeat), 1.5),
        ]  # fmt: skip
        peers = [
            ("python -c pass (the floor)", best_of([sys.executable, "-c", "pass"], repeat)),
            ("celery --help (the stack's own command line)", best_of([str(BIN / "celery"), "--help"], repeat)),
            ("python -c 'import scipy.stats, networkx, ...' (the old start)", best_of([sys.executable, "-c", EAGER],
                                                                                       repeat)),
        ]
    print(f"whole-process wall time, best of {repeat}")
    print(f"{'command':<66} {'wall s':>7} {'CPU s':>6}")
    for label, (wall, cpu), _ in ours:
        print(f"{label:<66} {wall:>7.3f} {cpu:>6.3f}")
    for label, (wall, cpu) in peers:
        print(f"{'peer: ' + label:<66} {wall:>7.3f} {cpu:>6.3f}")
    verdicts = Verdicts("bench_cli")
    celery_help = f"celery --help {peers[1][1][0]:.3f} s"
    old_start = f"old start's imports {peers[2][1][0]:.3f} s"
    for (label, (wall, _), target), peer in zip(ours, (celery_help, old_start, old_start), strict=True):
        verdicts.check(f"{label} < {target} s", f"{wall:.3f} s", peer, wall < target)
    return verdicts.exit_code()

if __name__ == "__main__":
    sys.exit(main())
