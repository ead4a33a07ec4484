"""What the ``des`` commands share: their count flags, the fleet options, staged outputs and the evaluator.

``des run``, ``des sweep`` and ``des validate`` live in :mod:`simfleet.producer.cli.des`; the searches (``des sla``,
``des capacity``, ``des bottleneck``) in :mod:`simfleet.producer.cli.des_search`. Like them, this module imports the
engine and the fleet client only inside the functions that use them.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simfleet.producer.cli.options import bounded_int, positive_float
from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.messages.study import DEFAULT_ENGINE, ENGINES, MAX_BATCH
from simfleet.shared.settings import PRIORITIES
from simfleet.worker.des.limits import MAX_REPLICATIONS

if TYPE_CHECKING:
    from simfleet.producer.progress import StepProgress
    from simfleet.producer.sla import Evaluator
    from simfleet.shared.messages.des import ReplicationSummary
    from simfleet.shared.outputs import Kind
    from simfleet.worker.des.scenario import Scenario


replications_int = bounded_int(1, MAX_REPLICATIONS)
"""An argparse type: a replication count, 1 to ``MAX_REPLICATIONS``."""


probe_replications_int = bounded_int(2, MAX_REPLICATIONS)
"""An argparse type: replications per probe of a search, 2 (an interval needs two) to ``MAX_REPLICATIONS``."""


processes_int = bounded_int(1, 1024)
"""An argparse type: a number of worker processes, 1 to 1024."""


def engine_option(parser: argparse.ArgumentParser) -> None:
    """``--engine``: the compiled kernel (the default) or the Python reference engine; the results are the same."""
    parser.add_argument(
        "--engine", choices=list(ENGINES), default=DEFAULT_ENGINE,
        help="DES engine: compiled (default; numba, compiled once per machine) or python (the reference engine); "
        "both give the same figures, bit for bit",
    )  # fmt: skip


def fleet_options(parser: argparse.ArgumentParser) -> None:
    """``--engine``; ``--fleet``, ``--priority``, ``--timeout``, ``--batch``: run on the fleet, not the local pool."""
    engine_option(parser)
    parser.add_argument("--fleet", action="store_true", help="run the replications on the fleet (Redis + workers)")
    parser.add_argument("--priority", choices=list(PRIORITIES), default="normal", help="queue priority on the fleet")
    parser.add_argument(
        "--timeout", type=positive_float, help="seconds to wait for the fleet's answer (default: no limit)"
    )
    parser.add_argument(
        "--batch", type=bounded_int(1, MAX_BATCH), metavar="N",
        help="with --fleet: replications per des.run task (default: sized from a measured run time, "
        "des.batch_target_s in the fleet settings); the results are the same whatever the batch",
    )  # fmt: skip


def fleet_batch(args: argparse.Namespace) -> int | None:
    """``--batch``, refused without ``--fleet`` (a local run has no tasks to size)."""
    batch: int | None = getattr(args, "batch", None)
    if batch is not None and not args.fleet:
        raise ConfigError("applies only with --fleet (it sets the replications per des.run task)", key="--batch")
    return batch


@contextlib.contextmanager
def staged(path: Path | None, flag: str, kind: Kind, owned: tuple[str, ...] = ()) -> Iterator[Path | None]:
    """:func:`atomic_output` for an optional output (``None`` yields ``None``)."""
    from simfleet.shared.outputs import atomic_output

    if path is None:
        yield None
        return
    with atomic_output(path, flag=flag, kind=kind, owned=owned) as staging:
        yield staging


def evaluator(args: argparse.Namespace, progress: StepProgress, rate_of: Any) -> tuple[Any, Evaluator]:
    """The fleet (to close afterwards) and an evaluator: on the fleet with --fleet, else the local pool.

    Each evaluation is a step of ``progress``, named by ``rate_of(probe)``, with its replications' progress.
    """
    from simfleet.worker.des.runner import run_replications

    batch = fleet_batch(args)
    if args.fleet:
        from simfleet.producer.fleet.client import Fleet

        fleet = Fleet.from_settings()

        def show(study: Any) -> None:
            progress.update(study.percent / 100.0, f"{study.done}/{study.total} replications done")

        on_fleet = fleet.evaluator(priority=args.priority, timeout_s=args.timeout, on_progress=show, batch=batch,
                                   engine=args.engine)  # fmt: skip

        def evaluate_on_fleet(
            probe: Scenario, replications: int, seed: int, first: int = 0
        ) -> list[ReplicationSummary]:
            progress.begin(rate_of(probe))
            return on_fleet(probe, replications, seed, first)

        return fleet, evaluate_on_fleet
    processes = args.processes

    def evaluate(probe: Scenario, replications: int, seed: int, first: int = 0) -> list[ReplicationSummary]:
        progress.begin(rate_of(probe))
        return run_replications(probe, replications=first + replications, seed=seed, processes=processes,
                                first=first, on_progress=progress.update, engine=args.engine)  # fmt: skip

    return None, evaluate


def rate_label(request_type: str | None) -> Any:
    """What names a probe on the progress line: the rate of ``request_type``, or of the whole mix (None)."""

    def label(probe: Scenario) -> str:
        if request_type is None:
            return f"mix at {sum(t.rate_per_min for t in probe.request_types.values()):.4g} requests/min"
        return f"{request_type} at {probe.request_types[request_type].rate_per_min:.4g} requests/min"

    return label


def check_request_type(scenario: Scenario, request_type: str | None) -> None:
    """Refuse a ``--request-type`` the scenario does not declare, naming the flag."""
    if request_type is not None and request_type not in scenario.request_types:
        raise ConfigError(
            f"unknown request type {printable(request_type)!r} in {scenario.source} "
            f"(declared: {', '.join(scenario.request_types)})",
            key="--request-type",
        )
