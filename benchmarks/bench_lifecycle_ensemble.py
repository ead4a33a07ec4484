"""What an ensemble of plan variants costs on the numba backend, against one run and against a run per variant.

Run: ``.venv/bin/python benchmarks/bench_lifecycle_ensemble.py [--variants 64] [--aircraft 279] [--days 3650]
[--repeat 3]``. Every figure is the best of ``--repeat`` rounds, the three ways taking turns within a round, on one
core, end to end as ``run_local`` does it: build the environment (the stacked one for the ensemble, with every
variant's changes applied), create the population, run, and collect MP2 chunk by chunk (365 days a chunk, into no
sink). The numba kernels are compiled (or loaded from numba's cache) before anything is timed.

The fleet is the reference one (``synthesize(279, 3650, seed=1)``). The variants scale MP4's targets by factors
spread evenly over 0.8 .. 1.4; every eighth one also flies 10 % more from the middle of the horizon on (MP5), and
every sixth one has repair times 30 days longer for one type (MP1).

Target (issue 17): with ``log="aggregates"``, the ensemble costs at most 8x one run of the plain fleet. The peer is
what a user does without ensembles: each variant run on its own, one after the other. The same figures with the
full per-airframe MP2 (``log="full"``) are printed for information.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import numpy as np
from harness import Verdicts

from simfleet.shared.lifecycle_contract import LifecycleInputs
from simfleet.shared.messages.plan import Change, Ensemble, Variant
from simfleet.worker.lifecycle.run import RunReport, run_local
from simfleet.worker.lifecycle.synth import synthesize

TARGET_RATIO = 8.0
"""The ensemble of 64 variants may cost this many single runs (aggregates only)."""


def variants_of(count: int, inputs: LifecycleInputs) -> list[Variant]:
    """``count`` variants: target factors over 0.8 .. 1.4, some with more flying or longer repairs."""
    middle = inputs.version_date + dt.timedelta(days=inputs.days // 2)
    out = []
    for v, factor in enumerate(np.linspace(0.8, 1.4, count)):
        minutes = [Change(factor=1.1, start=middle)] if v % 8 == 7 else []
        repair_time = [Change(offset=30, ac_type="mi17")] if v % 6 == 5 else []
        out.append(Variant(name=f"v{v}", targets=[Change(factor=float(factor))], minutes=minutes,
                           repair_time=repair_time))  # fmt: skip
    return out


def timed(inputs: LifecycleInputs, log: str, ensemble: Ensemble | None) -> tuple[float, RunReport]:
    """Wall seconds of one ``run_local`` on numba, and its report."""
    started = time.perf_counter()
    report = run_local(inputs, log=log, backend="numba", ensemble=ensemble)
    return time.perf_counter() - started, report


def measure(inputs: LifecycleInputs, variants: list[Variant], log: str, repeat: int) -> dict[str, float]:
    """Best seconds of one plain run, of the ensemble, and of a separate run per variant (taking turns)."""
    best = {"single": float("inf"), "ensemble": float("inf"), "separate": float("inf")}
    stages = {}
    ensemble = Ensemble(variants=variants)
    for _ in range(repeat):
        single_s, _ = timed(inputs, log, None)
        best["single"] = min(best["single"], single_s)
        ensemble_s, report = timed(inputs, log, ensemble)
        if ensemble_s < best["ensemble"]:
            best["ensemble"] = ensemble_s
            stages = report.timings_s
        separate_s = sum(timed(inputs, log, Ensemble(variants=[variant]))[0] for variant in variants)
        best["separate"] = min(best["separate"], separate_s)
    best.update({f"ensemble_{name}": seconds for name, seconds in stages.items() if name != "load"})
    return best


def main() -> int:
    """Time the three ways for both log modes; check the target on aggregates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=64)
    parser.add_argument("--aircraft", type=int, default=279)
    parser.add_argument("--days", type=int, default=3650)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure; the best counts")
    args = parser.parse_args()
    verdicts = Verdicts("bench_lifecycle_ensemble")
    inputs = synthesize(args.aircraft, args.days, seed=1)
    variants = variants_of(args.variants, inputs)
    small = synthesize(5, 3, seed=1)
    run_local(small, backend="numba")  # compile the kernels (or load them) outside every figure
    run_local(small, backend="numba", ensemble=Ensemble(variants=variants_of(2, small)))
    size = f"{args.variants} variants of {args.aircraft} x {args.days}"
    for log in ("aggregates", "full"):
        t = measure(inputs, variants, log, max(1, args.repeat))
        ratio, separate_ratio = t["ensemble"] / t["single"], t["separate"] / t["single"]
        print(f"{size}, log={log}, numba: one run {t['single']:.3f} s; the ensemble {t['ensemble']:.3f} s "
              f"(build + create {t['ensemble_create']:.3f} s, run {t['ensemble_run']:.3f} s, collect "
              f"{t['ensemble_collect']:.3f} s) = {ratio:.1f}x one run; each variant on its own {t['separate']:.3f} s "
              f"= {separate_ratio:.1f}x one run, {t['separate'] / t['ensemble']:.1f}x the ensemble")  # fmt: skip
        if log == "aggregates":
            verdicts.check(f"{size} as one ensemble (aggregates, numba) <= {TARGET_RATIO:.0f}x one run",
                           f"{t['ensemble']:.3f} s = {ratio:.1f}x one run ({t['single']:.3f} s)",
                           f"{t['separate']:.3f} s = {separate_ratio:.1f}x (a run per variant)",
                           ratio <= TARGET_RATIO)  # fmt: skip
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
