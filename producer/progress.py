"""Live progress of studies and jobs, with elapsed time and an estimate of the time left (ETA).

On a terminal it is rich's progress bar, redrawn in place; anywhere else (a pipe, a log file, CI) it is a plain line
every few seconds, such as ``  45.0%  elapsed 0:12  ETA 0:15  3/8 replications done``, so a log stays readable and
short. Either way it goes to stderr by default, so the answer a command prints on stdout is the same with or without
it. rich is imported only when a bar is drawn on a terminal: ``simfleet --help`` and short runs never load it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import IO, Any

Clock = Callable[[], float]


def clock_text(seconds: float | None) -> str:
    """``seconds`` as ``M:SS`` (``H:MM:SS`` from an hour), or ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta_s(elapsed_s: float, fraction: float) -> float | None:
    """Seconds left at the pace so far, or ``None`` before any progress (no pace to go by)."""
    if fraction <= 0.0:
        return None
    return max(0.0, elapsed_s * (1.0 - fraction) / fraction)


class ProgressBar:
    """One line of progress: a rich bar on a terminal, plain lines with elapsed and ETA every few seconds elsewhere.

    Args:
        stream: where to draw (default stderr).
        plain_every_s: the least time between two plain lines (the first and the last are always written).
        clock: the monotonic clock (a test gives its own).
    """

    def __init__(
        self, stream: IO[str] | None = None, plain_every_s: float = 5.0, clock: Clock = time.monotonic
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream)
        self.plain_every_s = plain_every_s
        self.clock = clock
        self.started = clock()
        self._last_plain: float | None = None
        self._last_shown: tuple[str, str] | None = None
        self._rich: Any = None
        self._task: Any = None

    def update(self, percent: float, label: str = "") -> None:
        """Show ``percent`` (0..100) done, with a label."""
        percent = max(0.0, min(100.0, percent))
        if self.tty:
            self._draw_rich(percent, label)
        else:
            self._draw_plain(percent, label)

    def _draw_rich(self, percent: float, label: str) -> None:
        if self._rich is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._rich = Progress(
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("elapsed {task.fields[elapsed]}  ETA {task.fields[eta]}"),
                TextColumn("{task.description}"),
                console=Console(file=self.stream),
                refresh_per_second=4,
            )
            self._rich.start()
            self._task = self._rich.add_task(label, total=100.0, elapsed="0:00", eta="-")
        elapsed = self.clock() - self.started
        left = eta_s(elapsed, percent / 100.0)
        self._rich.update(
            self._task, completed=percent, description=label, elapsed=clock_text(elapsed), eta=clock_text(left)
        )

    def _draw_plain(self, percent: float, label: str) -> None:
        now = self.clock()
        shown = (f"{percent:5.1f}", label)
        due = self._last_plain is None or now - self._last_plain >= self.plain_every_s or percent >= 100.0
        if shown == self._last_shown or not due:
            return
        elapsed = now - self.started
        left = eta_s(elapsed, percent / 100.0)
        self.stream.write(f"{percent:5.1f}%  elapsed {clock_text(elapsed)}  ETA {clock_text(left)}  {label}\n")
        self.stream.flush()
        self._last_plain = now
        self._last_shown = shown

    def close(self) -> None:
        """End the display (the bar stays on the terminal as it last was)."""
        if self._rich is not None:
            self._rich.stop()
            self._rich = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class LateProgress:
    """A :class:`ProgressBar` that appears only once the work has taken ``after_s`` (short runs print nothing).

    Call it with ``(fraction, label)``, as :func:`simfleet.worker.des.runner.run_replications` does. Its elapsed
    time and ETA count from its creation, not from when the bar appears.
    """

    def __init__(self, after_s: float = 2.0, stream: IO[str] | None = None, clock: Clock = time.monotonic) -> None:
        self.after_s = after_s
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.bar: ProgressBar | None = None

    def __call__(self, fraction: float, label: str) -> None:
        """Show ``fraction`` (0..1) done, once the work is ``after_s`` old."""
        if self.bar is None:
            if self.clock() - self.started < self.after_s:
                return
            self.bar = ProgressBar(self.stream, clock=self.clock)
            self.bar.started = self.started
        self.bar.update(100.0 * fraction, label)

    def close(self) -> None:
        """End the line, if one was drawn."""
        if self.bar is not None:
            self.bar.close()


class StepProgress:
    """Progress over a sequence of steps, each reporting its own share done (a rate sweep: one step per rate).

    With ``steps`` known one bar covers them all (step 2 of 4 at half done is 37.5%); with ``steps`` None (an SLA
    search, whose number of probes is found as it goes) each step gets a bar of its own. Like :class:`LateProgress`,
    nothing is drawn until the work is ``after_s`` old.
    """

    def __init__(self, steps: int | None, after_s: float = 0.0, stream: IO[str] | None = None,
                 clock: Clock = time.monotonic) -> None:  # fmt: skip
        self.steps = steps
        self.after_s = after_s
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.step = 0
        self.step_label = ""
        self.step_started = self.started
        self.bar: ProgressBar | None = None

    def begin(self, label: str) -> None:
        """Start the next step, called ``label``."""
        if self.steps is None and self.bar is not None:
            self.bar.close()
            self.bar = None
        self.step += 1
        self.step_label = label
        self.step_started = self.clock()
        self.update(0.0, "")

    def update(self, fraction: float, detail: str) -> None:
        """The current step is ``fraction`` (0..1) done; ``detail`` follows its label."""
        if self.bar is None:
            if self.clock() - self.started < self.after_s:
                return
            self.bar = ProgressBar(self.stream, clock=self.clock)
            self.bar.started = self.started if self.steps is not None else self.step_started
        label = f"{self.step_label}: {detail}" if detail else self.step_label
        if self.steps is None:
            self.bar.update(100.0 * fraction, label)
        else:
            self.bar.update(100.0 * (self.step - 1 + fraction) / self.steps, f"{label} (step {self.step}/{self.steps})")

    def close(self) -> None:
        """End the display, if one was drawn."""
        if self.bar is not None:
            self.bar.close()
