"""Which engine runs a replication: the compiled kernel (the default) or the Python reference engine.

Both take the same scenario, seed and replication index and give the same
:class:`~simfleet.shared.messages.des.ReplicationSummary`, bit for bit but for the wall-clock figures
(``tests/des/test_conformance.py`` checks it). The Python engine (:mod:`simfleet.worker.des.engine`) is the readable
reference and the only one that writes an event trace or calls an observer; the compiled kernel
(:mod:`simfleet.worker.des.compiled`) is the one that runs studies, 10 to 50 times faster.

The kernel is compiled by numba on its first use on a machine, into numba's on-disk cache (``NUMBA_CACHE_DIR``, else
``__pycache__`` beside the sources); later processes load it from there in well under a second. :func:`prepare`
does this ahead of time: workers call it before they take tasks, the local runner before it forks its pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from simfleet.shared.messages.des import ReplicationSummary
from simfleet.shared.messages.study import DEFAULT_ENGINE, ENGINES, Engine
from simfleet.worker.des.engine import Simulation
from simfleet.worker.des.scenario import Scenario


class Replication(Protocol):
    """What the runners use of a replication, whichever engine runs it."""

    @property
    def now(self) -> float:
        """The simulated time reached (seconds)."""

    @property
    def events(self) -> int:
        """Events processed so far."""

    @property
    def wall_s(self) -> float:
        """Wall-clock seconds spent running so far."""

    @property
    def n_sys(self) -> int:
        """Requests in the system now."""

    def slices(self, count: int) -> Iterator[None]:
        """Run to the end in ``count`` steps of the horizon, yielding between them."""

    def run(self, until_s: float | None = None) -> bool:
        """Run up to ``until_s`` (to the end when None); True when the replication has ended."""

    def summary(self) -> ReplicationSummary:
        """The replication's figures."""


def simulation(scenario: Scenario, seed: int, replication: int, engine: Engine = DEFAULT_ENGINE) -> Replication:
    """Replication ``replication`` of ``scenario`` with study seed ``seed``, ready to run on ``engine``."""
    if engine == "python":
        return Simulation(scenario, seed, replication)
    from simfleet.worker.des.compiled import CompiledSimulation

    return CompiledSimulation(scenario, seed, replication)


def run_replication(scenario: Scenario, seed: int, replication: int,
                    engine: Engine = DEFAULT_ENGINE) -> ReplicationSummary:  # fmt: skip
    """Run one replication to its end on ``engine`` and return its summary."""
    sim = simulation(scenario, seed, replication, engine)
    sim.run()
    return sim.summary()


_ready: set[str] = set()
"""Engines made ready in this process (and so in the processes it forks afterwards)."""


def prepare(engine: Engine = DEFAULT_ENGINE) -> float:
    """Make ``engine`` ready to run at full speed in this process; return the seconds it took (0 for Python).

    For the compiled kernel: compile it (or load it from numba's cache), once per process (a search's runner asks at
    every probe). Processes forked afterwards inherit it.
    """
    if engine == "python" or engine in _ready:
        return 0.0
    from simfleet.worker.des.compiled import warm

    seconds = warm()
    _ready.add(engine)
    return seconds


__all__ = ["DEFAULT_ENGINE", "ENGINES", "Engine", "Replication", "prepare", "run_replication",
           "simulation"]  # fmt: skip
