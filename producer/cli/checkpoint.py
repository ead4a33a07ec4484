"""``simfleet checkpoint list|show|verify JOB``: a job's checkpoints as the references in Redis describe them."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli.options import work_id
from simfleet.shared.errors import CheckpointError, printable
from simfleet.shared.settings import load_settings

if TYPE_CHECKING:
    from simfleet.shared.checkpoints import CheckpointRef, Checkpoints


def register(families: Any) -> None:
    """Add the ``checkpoint`` command family."""
    parser: argparse.ArgumentParser = families.add_parser("checkpoint", help="checkpoints of lifecycle jobs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    listing = commands.add_parser("list", help="every checkpoint of a job, oldest first")
    show = commands.add_parser("show", help="one checkpoint's header and what its payload holds")
    show.add_argument("--index", type=int, default=-1, help="position in the list (default: the newest)")
    verify = commands.add_parser("verify", help="read every checkpoint of a job and check its sha256")
    for command, handler in ((listing, _list), (show, _show), (verify, _verify)):
        command.add_argument("job_id", type=work_id, help="the job's id")
        command.add_argument("--json", action="store_true", help="print the answer as JSON")
        command.set_defaults(handler=handler)
    prune = commands.add_parser("prune", help="drop the checkpoints of ended jobs past stores.checkpoint_retention_s")
    prune.add_argument(
        "--older-than",
        type=_age_s,
        metavar="SECONDS",
        help="instead of the retention setting, drop those of jobs ended this long ago",
    )
    prune.add_argument("--json", action="store_true", help="print the pruned jobs as JSON")
    prune.set_defaults(handler=_prune)


def _age_s(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more (``0``: every ended job)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {printable(text)!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, got {printable(text)}")
    return value


def _store() -> Checkpoints:
    from simfleet.shared.checkpoints import Checkpoints
    from simfleet.shared.redis_client import connect

    settings = load_settings()
    client = connect(settings.result_backend, retry_s=settings.redis_retry_s)
    return Checkpoints.from_settings(settings, client)


def _when(ref: CheckpointRef) -> str:
    return dt.datetime.fromtimestamp(ref.created, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _list(args: argparse.Namespace) -> int:
    refs = _store().refs(args.job_id)
    if args.json:
        json.dump([ref.__dict__ for ref in refs], sys.stdout, indent=2)
        print()
        return 0
    if not refs:
        print(f"job {args.job_id} has no checkpoints")
        return 0
    print(f"{'#':>3}  {'kind':<12} {'days':>11}  {'size':>10}  {'epoch':>5}  {'created (UTC)':<19}  sha256")
    for i, ref in enumerate(refs):
        days = f"{ref.first_day}..{ref.day}" if ref.kind == "result" else str(ref.day)
        print(f"{i:>3}  {ref.kind:<12} {days:>11}  {ref.size:>10,}  {ref.epoch:>5}  {_when(ref)}  {ref.sha256[:16]}")
    return 0


def _describe(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {list(value.shape)}"
    if isinstance(value, dict):
        return {key: _describe(item) for key, item in value.items()}
    if isinstance(value, list):
        return f"list of {len(value)}"
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


def _show(args: argparse.Namespace) -> int:
    store = _store()
    refs = store.refs(args.job_id)
    if not refs:
        raise CheckpointError(f"job {args.job_id} has no checkpoints")
    try:
        ref = refs[args.index]
    except IndexError as exc:
        raise CheckpointError(f"job {args.job_id} has {len(refs)} checkpoints; no index {args.index}") from exc
    document = store.read(ref)
    shown = {"ref": ref.__dict__, "format": document["format"], "payload": _describe(document["payload"])}
    json.dump(shown, sys.stdout, indent=2)
    print()
    return 0


def _verify(args: argparse.Namespace) -> int:
    store = _store()
    results = []
    for ref in store.refs(args.job_id):
        try:
            store.read(ref)
            results.append({"key": ref.key, "kind": ref.kind, "day": ref.day, "ok": True, "error": ""})
        except CheckpointError as exc:
            results.append({"key": ref.key, "kind": ref.kind, "day": ref.day, "ok": False, "error": str(exc)})
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        for result in results:
            print(f"{'ok ' if result['ok'] else 'BAD'}  {result['kind']:<12} day {result['day']:>5}  "
                  f"{result['error'] or result['key']}")  # fmt: skip
        bad = sum(not r["ok"] for r in results)
        print(f"{len(results)} checkpoint(s), {bad} bad")
    return 1 if any(not r["ok"] for r in results) else 0


def _prune(args: argparse.Namespace) -> int:
    from simfleet.shared.jobs import Jobs

    settings = load_settings()
    store = _store()
    if args.older_than is not None:
        store.retention_s = args.older_than
    jobs = Jobs(store.redis)
    pruned = []
    for job_id in jobs.listed(limit=1_000_000):
        record = jobs.get(job_id)
        if record is not None and record.ended and store.refs(job_id) and store.expire(job_id, record.finished):
            pruned.append(job_id)
    if args.json:
        json.dump({"pruned": pruned, "retention_s": store.retention_s}, sys.stdout, indent=2)
        print()
    else:
        print(
            f"{len(pruned)} ended job(s) past {store.retention_s:.0f} s: checkpoints dropped"
            + (f" ({', '.join(pruned)})" if pruned else "")
            + f"; store {settings.stores.checkpoint_url}"
        )
    return 0
