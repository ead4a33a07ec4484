"""A live progress line for studies and jobs: a bar on a terminal, a line every few seconds elsewhere."""

from __future__ import annotations

import sys
import time
from typing import IO


class ProgressBar:
    """Renders ``[#####-----]  45.0%  label`` in place on a terminal; plain periodic lines otherwise."""

    def __init__(self, stream: IO[str] | None = None, width: int = 30, plain_every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._last_text = ""

    def update(self, percent: float, label: str = "") -> None:
        """Show ``percent`` (0..100) with a label."""
        percent = max(0.0, min(100.0, percent))
        filled = round(self.width * percent / 100.0)
        text = f"[{'#' * filled}{'-' * (self.width - filled)}] {percent:5.1f}%  {label}"
        if self.tty:
            self.stream.write("\r" + text.ljust(len(self._last_text)))
            self.stream.flush()
        elif text != self._last_text and (
            time.monotonic() - self._last_plain >= self.plain_every_s or percent >= 100.0
        ):
            self._last_plain = time.monotonic()
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last_text = text

    def close(self) -> None:
        """End the line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class LateProgress:
    """A :class:`ProgressBar` that appears only once the work has taken ``after_s`` (short runs print nothing).

    Call it with ``(fraction, label)``, as :func:`simfleet.worker.des.runner.run_replications` does.
    """

    def __init__(self, after_s: float = 2.0, stream: IO[str] | None = None) -> None:
        self.after_s = after_s
        self.stream = stream
        self.started = time.monotonic()
        self.bar: ProgressBar | None = None

    def __call__(self, fraction: float, label: str) -> None:
        """Show ``fraction`` (0..1) done, once the work is ``after_s`` old."""
        if self.bar is None:
            if time.monotonic() - self.started < self.after_s:
                return
            self.bar = ProgressBar(self.stream)
        self.bar.update(100.0 * fraction, label)

    def close(self) -> None:
        """End the line, if one was drawn."""
        if self.bar is not None:
            self.bar.close()
