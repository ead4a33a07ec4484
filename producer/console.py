"""The ``simfleet`` console script: the command line's entry point, with Ctrl-C covered from the first instruction.

The command line's package takes tens of milliseconds to import; a Ctrl-C in that time would print Python's
``KeyboardInterrupt`` traceback, since :func:`simfleet.producer.cli.main` has not started yet. This module imports
nothing but the standard library before it imports the package, and ends such a start the way ``main`` ends an
interrupted command: one line and exit status 130.
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130


def run() -> None:
    """Import the command line and run it; the process exits with its status."""
    try:
        from simfleet.producer.cli import main
    except KeyboardInterrupt:
        print("simfleet: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(main())
