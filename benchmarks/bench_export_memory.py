"""Peak memory of the MP2 export stage: streamed chunk by chunk into ClickHouse, against concatenating it first.

Run: ``.venv/bin/python benchmarks/bench_export_memory.py [--aircraft 20000] [--days 3650 1825] [--chunk-days 365]``.

The MP2 of a synthetic fleet (20,000 airframes x 3,650 days = 73 M rows by default; numba backend) is written as
result checkpoints, one per chunk of days, exactly as the execute stages write them. Each export then runs in a
fresh process that reads the checkpoints back and writes MP2 into an embedded ClickHouse (chDB), and reports its
peak resident memory (``VmHWM``, the process's own high-water mark):

- ours: :func:`simfleet.shared.clickhouse.mp2.export_mp2_chunks`, one chunk in memory at a time (the export stage);
- peer: the way the export stage worked before, which concatenated every chunk into one table and exported that
  (what an expert would write when the export API takes whole tables: ``np.concatenate`` per column).

Targets: our peak at the longest horizon within 15% of our peak at the half horizon (flat in days), and at most a
third of the peer's peak. Both exports must leave airframes x days rows in ``mp2``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Verdicts

from simfleet.shared.checkpoint_format import encode
from simfleet.worker.lifecycle.run import run_local
from simfleet.worker.lifecycle.sinks import Sink
from simfleet.worker.lifecycle.synth import synthesize

EXPORT = """
import json, sys, time
from pathlib import Path
import numpy as np
from simfleet.shared.checkpoint_format import decode
from simfleet.shared.clickhouse.migrations import open_db
from simfleet.shared.clickhouse.mp2 import export_mp2, export_mp2_chunks

folder, mode, airframes, days = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = sorted(folder.glob("result-*.ckpt"))

def chunks():
    for path in files:
        payload = decode(path.read_bytes())["payload"]
        chunk = (payload["airframe"], payload["daily"])
        del payload
        yield chunk
        del chunk

started = time.perf_counter()
with open_db(f"chdb://{folder}/ch-{mode}") as ch:
    if mode == "ours":
        export_mp2_chunks(ch, "bench", chunks(), airframes=airframes, days=days)
    else:
        parts = list(chunks())
        whole = [{name: np.concatenate([part[i][name] for part in parts]) for name in parts[0][i]} for i in (0, 1)]
        del parts
        export_mp2(ch, "bench", whole[0], whole[1], airframes=airframes, days=days)
    rows = ch.rows(f"SELECT count() FROM {ch.database}.mp2 WHERE job_id = 'bench'")[0][0]
# VmHWM, this process's own peak: ru_maxrss would carry over the parent's size at fork, across exec
peak_kib = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
print(json.dumps({"peak_mib": peak_kib / 1024,
                  "seconds": time.perf_counter() - started, "rows": rows}))
"""


class CheckpointSink(Sink):
    """Writes each chunk as a result checkpoint file, as an execute stage does (without Redis references)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bytes = 0

    def write(self, first_day: int, airframe: dict, daily: dict) -> None:  # type: ignore[type-arg]
        blob = encode("result", "bench", first_day, {"airframe": airframe, "daily": daily})
        (self.folder / f"result-{first_day:05d}.ckpt").write_bytes(blob)
        self.bytes += len(blob)


def export(folder: Path, mode: str, aircraft: int, days: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", EXPORT, str(folder), mode, str(aircraft), str(days)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == aircraft * days, result
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aircraft", type=int, default=20_000)
    parser.add_argument("--days", type=int, nargs="+", default=[3650, 1825], help="horizons (the first is the figure)")
    parser.add_argument("--chunk-days", type=int, default=365)
    parser.add_argument("--skip-peer", action="store_true", help="only our export (the peer needs ~6 GiB)")
    args = parser.parse_args()
    inputs = synthesize(args.aircraft, max(args.days), seed=1)
    figures: dict[int, dict[str, dict[str, float]]] = {}
    for days in sorted(args.days, reverse=True):
        with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
            folder = Path(tmp)
            sink = CheckpointSink(folder)
            started = time.perf_counter()
            run_local(inputs, days=days, sink=sink, chunk_days=args.chunk_days, backend="numba")
            print(f"{args.aircraft:,} x {days:,}: simulated and checkpointed in {time.perf_counter() - started:.1f} s "
                  f"({sink.bytes / 2**20:,.0f} MiB of result checkpoints)", flush=True)  # fmt: skip
            figures[days] = {"ours": export(folder, "ours", args.aircraft, days)}
            if not args.skip_peer and days == max(args.days):
                figures[days]["peer"] = export(folder, "peer", args.aircraft, days)
    longest, shortest = max(args.days), min(args.days)
    ours, half = figures[longest]["ours"], figures[shortest]["ours"]
    print(f"\n{'export':<32} {'rows':>12} {'peak MiB':>10} {'seconds':>8}")
    for days in sorted(figures):
        for mode, result in figures[days].items():
            label = f"{mode} ({'chunk by chunk' if mode == 'ours' else 'concatenated'}), {days:,} days"
            print(f"{label:<32} {result['rows']:>12,} {result['peak_mib']:>10,.0f} {result['seconds']:>8.1f}")
    verdicts = Verdicts("bench_export_memory")
    if longest != shortest:
        verdicts.check(f"our peak at {longest:,} days within 15% of ours at {shortest:,} days (flat in days)",
                       f"{ours['peak_mib']:,.0f} MiB", f"- (ours at {shortest:,} days: {half['peak_mib']:,.0f} MiB)",
                       ours["peak_mib"] <= 1.15 * half["peak_mib"])  # fmt: skip
    if "peer" in figures[longest]:
        peer = figures[longest]["peer"]
        verdicts.check("peak at most a third of the concatenating peer's", f"{ours['peak_mib']:,.0f} MiB",
                       f"{peer['peak_mib']:,.0f} MiB ({peer['peak_mib'] / ours['peak_mib']:.1f}x ours)",
                       ours["peak_mib"] <= peer["peak_mib"] / 3)  # fmt: skip
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
