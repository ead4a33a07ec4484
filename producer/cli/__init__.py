# PYTHON_ARGCOMPLETE_OK  (argcomplete's global activation looks for this mark in the first bytes of the module)
"""The ``simfleet`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function that adds its parser and sets
``handler`` on it; this module only assembles them and turns :class:`SimfleetError` into a clean exit. The
producer's families are listed here; the operators' commands of the worker side (``worker``, ``watchdog``,
``fleet``) join through the ``simfleet.commands`` entry point group, so this package imports nothing of the
worker side. A Redis outage that escapes a command is one line naming it, never a traceback.

Building the parser is cheap: a family's module imports at its top only what its flags need (names, limits, flag
types); the engines, Celery, scipy, numba, pyarrow, matplotlib and the ClickHouse clients are imported inside the
handlers that use them, so that ``simfleet --help``, ``--version`` and ``job status`` start at once (the benchmark
``benchmarks/bench_cli.py`` measures it, ``tests/producer/test_cli_skeleton.py`` checks what they import).

Every command and subcommand takes ``--config FILE`` (the settings file, as ``$SIMFLEET_CONFIG`` sets it; it is put
in that variable, so that the processes a command starts read the same file), and completes in the shell through
argcomplete (``eval "$(register-python-argcomplete simfleet)"``).
"""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from simfleet.producer import console
from simfleet.producer.cli import checkpoint, db, des, job, lifecycle, study
from simfleet.shared.errors import SimfleetError, WorkFailed, printable
from simfleet.shared.settings import CONFIG_ENV

COMMANDS_GROUP = "simfleet.commands"
CONFIG_HELP = f"the settings file (default: ${CONFIG_ENV}, else config/fleet.yaml when it exists, else the defaults)"


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every command family registered, and ``--config`` on every command."""
    from importlib.metadata import entry_points

    parser = argparse.ArgumentParser(prog="simfleet", description="Simulation-job fleet: DES and lifecycle models.")
    parser.add_argument("--version", action=_Version, help="print the version of simfleet and exit")
    families = parser.add_subparsers(dest="family", required=True, metavar="COMMAND")
    for family in (des, lifecycle, study, job, checkpoint, db):
        family.register(families)
    for plugin in sorted(entry_points(group=COMMANDS_GROUP), key=lambda point: point.name):
        plugin.load()(families)
    for each in parsers(parser):
        # SUPPRESS: a subcommand that was not given --config leaves the value of the command above it in place.
        each.add_argument("--config", type=config_file, metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return parser


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser of a command or subcommand below it (aliases once)."""
    yield parser
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield from parsers(child)


def config_file(text: str) -> Path:
    """An argparse type: a settings file that exists and can be read (its content is checked when it is loaded)."""
    path = Path(text)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {printable(text, 200)}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{printable(text, 200)} is not a file")
    return path


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("simfleet")
        except PackageNotFoundError:  # run from a checkout that was not installed
            number = "unknown (not installed)"
        print(f"simfleet {number}")
        parser.exit()


def _autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit, when this process was started for one (argcomplete)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; ``--config`` is put in ``$SIMFLEET_CONFIG`` for the command and the processes it starts."""
    parser = build_parser()
    _autocomplete(parser)
    args = parser.parse_args(argv)  # argparse's own errors exit here with status 2
    config = getattr(args, "config", None)
    if config is not None:
        os.environ[CONFIG_ENV] = str(Path(config).resolve())
    return args


EXIT_OK = 0
EXIT_NEGATIVE = 1
"""The command ran and its answer is no: a validation failed, a search did not converge, a job or study failed."""
EXIT_USAGE = 2
"""Bad input: a flag, a file, a setting, an id; or the fleet cannot be reached. Nothing was started."""
EXIT_INTERNAL = 70
"""A defect of simfleet (an exception it did not expect): one line says so; ``SIMFLEET_DEBUG=1`` shows the trace."""
EXIT_INTERRUPTED = console.EXIT_INTERRUPTED  # the console script ends a Ctrl-C during this import the same way
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks run (staging outputs are removed)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _redeliver_stops(unraisable: Any) -> None:
    """``sys.unraisablehook`` while a command runs: a signal that landed in a callback is raised again, not printed.

    A Ctrl-C or SIGTERM that arrives while Python runs a callback whose exceptions it cannot propagate (the import
    system's module-lock weakref callback, a ``__del__``) would be printed as "Exception ignored in ..." with a
    traceback, and lost. It is handed back to the main thread as the same signal, once this hook has returned (a
    signal raised inside the hook would be swallowed the same way), and ``main`` turns it into its one line and exit
    code. Anything else goes to Python's own hook.
    """
    exc = unraisable.exc_value
    if not isinstance(exc, Terminated | KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    main_id = threading.main_thread().ident or 0

    def deliver() -> None:
        while _in_hook(sys._current_frames().get(main_id)):
            time.sleep(0.001)
        _thread.interrupt_main(signum)

    threading.Thread(target=deliver, name="simfleet-redeliver-signal", daemon=True).start()


_HOOK_CODE = _redeliver_stops.__code__


def _in_hook(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code is _HOOK_CODE:
            return True
        frame = frame.f_back
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (see ``docs/errors.md``)."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    previous_hook = sys.unraisablehook
    if previous is not None:
        sys.unraisablehook = _redeliver_stops
    config = os.environ.get(CONFIG_ENV)
    try:
        args = parse(argv)
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
    except KeyboardInterrupt:
        print("simfleet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("simfleet: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:
        reason = _unreachable(exc)
        if reason is not None:
            print(f"simfleet: error: the fleet's Redis is unreachable: {reason}", file=sys.stderr)
            return EXIT_USAGE
        if exc.filename is None:
            return _internal(exc)
        print(f"simfleet: error: {printable(exc.filename, 200)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        reason = _unreachable(exc)
        if reason is not None:
            print(f"simfleet: error: the fleet's Redis is unreachable: {reason}", file=sys.stderr)
            return EXIT_USAGE
        stop = _stop_within(exc)
        if stop is not None:  # a signal raised inside code that wrapped it (a class being built by an import)
            print(f"simfleet: {'terminated' if stop is Terminated else 'interrupted'}", file=sys.stderr)
            return EXIT_TERMINATED if stop is Terminated else EXIT_INTERRUPTED
        return _internal(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            sys.unraisablehook = previous_hook
        if config is None:  # --config held for this command only (main may be called again in the same process)
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = config
    return code


def _unreachable(exc: BaseException) -> str | None:
    """What an operator would check, when ``exc`` says that Redis cannot be reached; else ``None``.

    The Redis client is not imported to find out: an error of it can only come from a command that imported it.
    """
    if not ({"redis", "kombu"} & sys.modules.keys() or isinstance(exc, ConnectionError | TimeoutError)):
        return None
    from simfleet.shared.redis_client import UNAVAILABLE, reason_of

    return reason_of(exc) if isinstance(exc, UNAVAILABLE) else None


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
