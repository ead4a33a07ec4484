"""Running a replication in steps of simulated time, whichever engine runs it."""

from __future__ import annotations

from collections.abc import Iterator


class Sliced:
    """Running a replication in steps of simulated time; shared by the Python engine and the compiled kernel's driver.

    The class using it has ``horizon_s``, ``next_event_s`` and ``run(until_s) -> bool``.
    """

    horizon_s: float

    @property
    def next_event_s(self) -> float:
        """The simulated time of the next event (infinite when nothing is left to happen)."""
        raise NotImplementedError

    def run(self, until_s: float | None = None) -> bool:
        """Process events up to simulated time ``until_s``; True when the replication has ended."""
        raise NotImplementedError

    def slices(self, count: int) -> Iterator[None]:
        """Run the replication to its end in steps of ``horizon_s / count`` of simulated time, yielding at each pause.

        What callers do between steps: report progress, look at the clock, the memory or a cancel flag. A step
        starts no earlier than :attr:`next_event_s`, so a long quiet drain is one step, not billions of empty ones.
        """
        step = self.horizon_s / count
        until = step
        while not self.run(until_s=until):
            yield
            until = max(until + step, self.next_event_s)
