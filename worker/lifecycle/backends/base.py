"""The interface every lifecycle backend implements (numpy, cupy, numba, flamegpu).

A backend holds one simulation: build it from an :class:`Environment`, create the population, step it day by day,
hand out MP2 in chunks, and export/import its whole state as plain data (numpy arrays and Python scalars, in
``idx`` order, so any backend can continue another's run).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import SimulationError
from simfleet.shared.lifecycle_contract import LOG_MODES
from simfleet.worker.lifecycle.environment import NO_DATE, Environment, build_environment

if TYPE_CHECKING:
    from simfleet.shared.lifecycle_contract import LifecycleInputs

Columns = dict[str, npt.NDArray[Any]]
INT32_HEADROOM = 2**31 - 1
"""Minutes are held in int32 on every backend: the largest starting value plus ten years of flying must fit."""


def check_build(env: Environment, log: str) -> None:
    """The checks every backend's ``build`` makes: a known log mode, and minutes that int32 holds to the last day."""
    if log not in LOG_MODES:
        raise ValueError(f"log must be full or aggregates, got {log!r}")
    largest = max((int(a.max()) for a in (env.ll, env.oh, env.br, env.sne, env.ppr) if a.size), default=0)
    if largest + 1440 * (env.days + 1) > INT32_HEADROOM:
        raise SimulationError(f"minutes up to {largest:,} would overflow int32 over {env.days} days")


def check_plain(env: Environment, backend: str) -> None:
    """Refuse an environment a backend cannot run yet: an ensemble, or maintenance options (docs/lifecycle.md)."""
    if env.members > 1 or env.maintenance is not None or env.minutes_col is not None:
        raise SimulationError(f"backend {backend!r} does not run ensembles or maintenance options; use numpy, cupy "
                              "or numba")  # fmt: skip


def plain_state(env: Environment) -> dict[str, npt.NDArray[np.int64]]:
    """The planning state of a run without maintenance options: MP1's repair times, no one waiting for a slot."""
    return {
        "repair_duration": env.repair_time.astype(np.int64),
        "queued_since": np.full(env.n, NO_DATE, dtype=np.int64),
    }


class LifecycleBackend(abc.ABC):
    """One live lifecycle simulation.

    The life of one: :meth:`build` (or :meth:`build_from_inputs`), then :meth:`create` or :meth:`load_state_dict`,
    then :meth:`step` and :meth:`read_chunk` in turns until :attr:`day` reaches the horizon. With :attr:`debug` set,
    every invariant of LIFECYCLE_MODEL.md is checked after each day (an :class:`~simfleet.shared.errors.InvariantError`
    names the day, the airframe and the rule).
    """

    name: str = ""
    debug: bool = False

    def build_from_inputs(self, inputs: LifecycleInputs, *, days: int | None = None, log: str = "full") -> None:
        """Build the dense environment from validated inputs, then :meth:`build`."""
        self.build(build_environment(inputs, days), log=log)

    @abc.abstractmethod
    def build(self, env: Environment, *, log: str = "full") -> None:
        """Take the environment; ``log`` is ``full`` (per airframe and day) or ``aggregates`` (per type only)."""

    @abc.abstractmethod
    def create(self) -> None:
        """Create the population from the initial state (with the pre-day-0 check)."""

    @abc.abstractmethod
    def step(self, days: int) -> None:
        """Simulate the next ``days`` days (never past the horizon)."""

    @property
    @abc.abstractmethod
    def day(self) -> int:
        """The next day to simulate (days done so far)."""

    @abc.abstractmethod
    def read_chunk(self) -> tuple[Columns, Columns]:
        """MP2 since the last read: (per airframe and day, per type and day), rows ordered by (day, idx/type)."""

    def device_memory_bytes(self) -> int | None:
        """Device memory the backend holds, for progress reports; ``None`` for a backend on the host."""
        return None

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The whole state as plain data: the day and every agent variable, in idx order."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (after :meth:`build` with the same environment)."""
