"""The ``simfleet`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function that adds its parser and sets
``handler`` on it; this module only assembles them and turns :class:`SimfleetError` into a clean exit. The
producer's families are listed here; the operators' commands of the worker side (``worker``, ``watchdog``,
``fleet``) join through the ``simfleet.commands`` entry point group, so this package imports nothing of the
worker side. A Redis outage that escapes a command is one line naming it, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points

from simfleet.producer.cli import checkpoint, db, des, job, lifecycle, study
from simfleet.shared.errors import SimfleetError, WorkFailed, printable
from simfleet.shared.redis_client import UNAVAILABLE, reason_of

COMMANDS_GROUP = "simfleet.commands"


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command family registered."""
    parser = argparse.ArgumentParser(prog="simfleet", description="Simulation-job fleet: DES and lifecycle models.")
    families = parser.add_subparsers(dest="family", required=True, metavar="COMMAND")
    for family in (des, lifecycle, study, job, checkpoint, db):
        family.register(families)
    for plugin in sorted(entry_points(group=COMMANDS_GROUP), key=lambda point: point.name):
        plugin.load()(families)
    return parser


EXIT_OK = 0
EXIT_NEGATIVE = 1
"""The command ran and its answer is no: a validation failed, a search did not converge, a job or study failed."""
EXIT_USAGE = 2
"""Bad input: a flag, a file, a setting, an id; or the fleet cannot be reached. Nothing was started."""
EXIT_INTERNAL = 70
"""A defect of simfleet (an exception it did not expect): one line says so; ``SIMFLEET_DEBUG=1`` shows the trace."""
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks run (staging outputs are removed)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (see ``docs/errors.md``)."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        args = build_parser().parse_args(argv)  # argparse's own errors exit here with status 2
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except WorkFailed as exc:
        print(f"simfleet: {exc}", file=sys.stderr)
        return EXIT_NEGATIVE
    except SimfleetError as exc:
        print(f"simfleet: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UNAVAILABLE as exc:
        print(f"simfleet: error: the fleet's Redis is unreachable: {reason_of(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("simfleet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("simfleet: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:
        if exc.filename is None:
            return _internal(exc)
        print(f"simfleet: error: {printable(exc.filename, 200)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        stop = _stop_within(exc)
        if stop is not None:  # a signal raised inside code that wrapped it (a class being built by an import)
            print(f"simfleet: {'terminated' if stop is Terminated else 'interrupted'}", file=sys.stderr)
            return EXIT_TERMINATED if stop is Terminated else EXIT_INTERRUPTED
        return _internal(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return code


def _stop_within(exc: BaseException) -> type[BaseException] | None:
    """``Terminated`` or ``KeyboardInterrupt`` when one of them is the cause (or context) of ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Terminated | KeyboardInterrupt):
            return type(current) if isinstance(current, Terminated) else KeyboardInterrupt
        current = current.__cause__ or current.__context__
    return None


def _internal(exc: BaseException) -> int:
    if os.environ.get("SIMFLEET_DEBUG"):
        traceback.print_exception(exc)
    print(f"simfleet: internal error: {type(exc).__name__}: {printable(exc, 300)} (a defect of simfleet; please "
          "report it with the command; SIMFLEET_DEBUG=1 prints the trace)", file=sys.stderr)  # fmt: skip
    return EXIT_INTERNAL


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    """After the reader of stdout went away (``| head``), point stdout at /dev/null so the exit flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
