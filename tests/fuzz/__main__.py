"""``python -m tests.fuzz``: run the fuzz suite and print its outcome table (``make fuzz``).

Exits 1 when any case crashed, hung, left a partial write or printed bad output; the failing cases are listed with
their command and their last lines of stderr, and their folders are kept under ``--keep`` for a look.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.generators import make_cases
from tests.fuzz.harness import run_cases, summary_line
from tests.fuzz.templates import Templates


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=2000, help="how many cases (default 2000)")
    parser.add_argument("--seed", type=int, default=12, help="the seed of the generators (default 12)")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1, help="cases at once (default: cores)")
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds after which a case is a hang")
    parser.add_argument("--family", action="append", help="only this family (repeatable; default: all)")
    parser.add_argument("--keep", type=Path, help="keep the folders of failing cases here")
    args = parser.parse_args()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="simfleet-fuzz-"))
    try:
        templates = Templates(root / "templates")
        cases = make_cases(templates, args.cases, args.seed)
        if args.family:
            cases = [case for case in cases if case.family in args.family]

        def progress(done: int, total: int) -> None:
            if done % 100 == 0 or done == total:
                print(f"  {done}/{total} cases, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

        report = run_cases(cases, root / "cases", parallel=args.parallel, deadline_s=args.deadline, progress=progress)
    finally:
        if args.keep is not None and (root / "cases").exists():
            with contextlib.suppress(shutil.Error):  # FIFOs and unreadable files stay behind
                shutil.copytree(root / "cases", args.keep, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(root, ignore_errors=True)
    print(report.table())
    print(f"{summary_line(report)}; {time.monotonic() - started:.0f} s in all (seed {args.seed})")
    if report.failures:
        print(report.describe_failures(limit=60))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
