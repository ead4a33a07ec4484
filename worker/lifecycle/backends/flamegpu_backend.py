"""The FLAME GPU 2 backend (pyflamegpu): the day rules as RTC agent functions, MP2 collected on the host.

pyflamegpu is optional and separately installed (it is not on PyPI; AGPL-3.0 from 2.0.0-rc.3): it is imported by
:func:`create` only, never when :mod:`simfleet.worker.lifecycle.backends` is imported. Before the import, usage
statistics are switched off (``FLAMEGPU_SHARE_USAGE_STATISTICS=OFF`` unless the operator set the variable), and the
process's SIGINT handler is kept across the import and the creation of the simulation, which registers a C-level handler
that exits the process (:func:`sigint_guard`): a Celery worker must keep its own warm shutdown.

The model is described in :mod:`.flamegpu_model`. This module drives it: one FLAME GPU step per day, the day index
and the MP4 target for D+1 handed in before the step, the per-type figures read back after it, and the
per-airframe rows read in windows of :data:`LOG_WINDOW_DAYS` days (every day in debug mode) through the macro
property's raw binary export. MP2 is assembled by the same :class:`~.mp2_log.Mp2Log` as the numpy backend, so the
columns are the same by construction; the conformance suite checks the values wherever pyflamegpu runs.

Choices (also in docs/flamegpu.md):

- :meth:`FlameGpuBackend.create` takes the population at D0 from :class:`NumpyBackend` (MP3, deliveries before D0,
  the pre-day-0 check): one implementation of what happens before day 0, then loaded like any state.
- The state moves in and out through ``AgentVector`` in ``idx`` order, in exactly :class:`NumpyBackend`'s
  :meth:`~NumpyBackend.state_dict` format, so a run can change backends at a checkpoint.
- Written against the documented pyflamegpu API (2.0.0-rc.x) and not run where it was written: see
  docs/flamegpu.md for the command that checks it on a GPU machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import InvariantError, SimulationError
from simfleet.shared.lifecycle_contract import CORE_STATE_FIELDS
from simfleet.worker.lifecycle.backends.base import Columns, LifecycleBackend, check_plain, plain_state
from simfleet.worker.lifecycle.backends.flamegpu_model import (
    CLASSES,
    COUNT_COLUMN,
    DELIVERED_COLUMN,
    ELIGIBLE_COLUMN,
    INT_VARIABLES,
    REPAIRED_COLUMN,
    TO4_COLUMN,
    TO6_COLUMN,
    UINT_VARIABLES,
    DayBus,
    Layout,
    describe,
)
from simfleet.worker.lifecycle.backends.invariants import check_day
from simfleet.worker.lifecycle.backends.mp2_log import AIRFRAME_STATE, DayRecord, Mp2Log
from simfleet.worker.lifecycle.backends.numpy_backend import NumpyBackend
from simfleet.worker.lifecycle.environment import Environment

log = logging.getLogger(__name__)

USAGE_STATISTICS_VARIABLE = "FLAMEGPU_SHARE_USAGE_STATISTICS"
LOG_WINDOW_DAYS = 32
"""Days of per-airframe MP2 rows the device holds between two exports."""
RANDOM_SEED = 1
"""The model draws no random numbers; the seed is fixed anyway so nothing depends on the clock."""
MISSING = (
    "backend 'flamegpu' needs pyflamegpu, the Python package of FLAME GPU 2, and a CUDA GPU; pyflamegpu is not "
    "installed here. It is not on PyPI: install a FLAME GPU 2 release wheel for your CUDA and Python versions, e.g. "
    "`pip install --extra-index-url https://whl.flamegpu.com/whl/cuda130/ pyflamegpu` or a .whl from the FLAMEGPU2 "
    "GitHub releases. It stays an optional, separately installed extra (AGPL-3.0 from 2.0.0-rc.3); see "
    "docs/flamegpu.md."
)
_SIGACTION_BYTES = 1024
"""Room for a ``struct sigaction`` (152 bytes with glibc on x86-64); its first member is the handler."""


def disable_usage_statistics(environ: MutableMapping[str, str] | None = None) -> None:
    """Set ``FLAMEGPU_SHARE_USAGE_STATISTICS=OFF`` unless it is already set (the operator's choice wins)."""
    target = os.environ if environ is None else environ
    target.setdefault(USAGE_STATISTICS_VARIABLE, "OFF")


def _libc_sigaction() -> Any | None:
    """The C library's ``sigaction`` through ctypes, or ``None`` where there is none (Windows)."""
    if os.name != "posix":
        return None
    try:
        function: Any = ctypes.CDLL(None).sigaction
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


def process_sigint_action() -> bytes | None:
    """The process-level SIGINT action (``struct sigaction``'s bytes), which C code such as FLAME GPU changes.

    ``signal.getsignal`` cannot see such a change: it reports what Python last installed.
    """
    sigaction = _libc_sigaction()
    if sigaction is None:
        return None
    action = ctypes.create_string_buffer(_SIGACTION_BYTES)
    if sigaction(signal.SIGINT, None, action) != 0:
        return None
    return action.raw


def _set_process_sigint_action(action: bytes) -> None:
    sigaction = _libc_sigaction()
    if sigaction is not None:
        sigaction(signal.SIGINT, ctypes.create_string_buffer(action, len(action)), None)


def _handler_of(action: bytes | None) -> bytes | None:
    return None if action is None else action[: ctypes.sizeof(ctypes.c_void_p)]


@contextlib.contextmanager
def sigint_guard(what: str) -> Iterator[None]:
    """Keep the process's SIGINT handler across ``what``; warn and put it back if ``what`` replaced it.

    Both levels are watched: the handler Python knows (``signal.getsignal``) and the process-level action that C
    code replaces with ``signal()``/``sigaction()`` behind Python's back (FLAME GPU's ``CUDASimulation`` does).
    The process-level action is restored byte for byte from any thread; the Python-level handler only from the
    main thread, as Python allows.
    """
    python_before = signal.getsignal(signal.SIGINT)
    process_before = process_sigint_action()
    try:
        yield
    finally:
        python_changed = signal.getsignal(signal.SIGINT) is not python_before
        process_changed = _handler_of(process_sigint_action()) != _handler_of(process_before)
        if python_changed or process_changed:
            log.warning(
                "%s replaced the SIGINT handler (%s); the previous handler is restored",
                what,
                " and ".join(level for level, hit in (("Python", python_changed), ("process", process_changed)) if hit),
            )
            main_thread = threading.current_thread() is threading.main_thread()
            if python_changed and main_thread and python_before is not None:
                signal.signal(signal.SIGINT, python_before)
            elif python_changed:
                log.warning("the Python-level SIGINT handler was not restored (only the main thread may set it)")
            if process_before is not None:
                _set_process_sigint_action(process_before)


def import_pyflamegpu() -> Any:
    """The pyflamegpu module, imported with usage statistics off and the SIGINT handler kept.

    Raises:
        SimulationError: pyflamegpu cannot be imported (not installed, or no CUDA driver).
    """
    disable_usage_statistics()
    with sigint_guard("importing pyflamegpu"):
        try:
            return importlib.import_module("pyflamegpu")
        except ImportError as exc:
            raise SimulationError(f"{MISSING} (import failed: {exc})") from exc


def create(*, debug: bool = False) -> LifecycleBackend:
    """A new FLAME GPU backend (the registry's factory).

    Raises:
        SimulationError: pyflamegpu is missing; the message says how to install it.
    """
    return FlameGpuBackend(import_pyflamegpu(), debug=debug)


@dataclass(frozen=True)
class _DayTotals:
    """The per-type figures of one day, kept until its per-airframe rows come back."""

    day: int
    quota: list[int]
    shortfall: list[int]
    counts: npt.NDArray[np.int64]
    transitions: npt.NDArray[np.int64]
    eligible: list[list[int]]


class FlameGpuBackend(LifecycleBackend):
    """The lifecycle model on FLAME GPU 2 (see the module docstring and docs/flamegpu.md).

    Args:
        fg: the imported pyflamegpu module (:func:`create` imports it).
        debug: check every invariant of LIFECYCLE_MODEL.md after each day (rows come back every day).
    """

    name = "flamegpu"
    transitions: npt.NDArray[np.int64]
    shortfall_days: npt.NDArray[np.int64]
    shortfall_aircraft_days: npt.NDArray[np.int64]
    _log: Mp2Log
    _last_sne: npt.NDArray[np.integer[Any]]
    _last_ppr: npt.NDArray[np.integer[Any]]

    def __init__(self, fg: Any, *, debug: bool = False) -> None:
        self.fg = fg
        self.debug = debug
        self._day = 0
        self._stamp = 0

    @property
    def day(self) -> int:
        """The next day to simulate (days done so far)."""
        return self._day

    def build(self, env: Environment, *, log: str = "full") -> None:
        """Describe the model for ``env`` and create the CUDA simulation (RTC sources compile on first use)."""
        check_plain(env, self.name)
        self._initial = NumpyBackend()
        self._initial.build(env, log=log)  # the same checks (log mode, int32 headroom) and the D0 population
        self.env, self.log = env, log
        self.targets = env.targets.tolist()
        self.acn_internal = env.aircraft_number
        self.blocks = [np.flatnonzero(env.type_code == t) for t in range(env.n_types)]
        self._log_rows = log == "full" or self.debug
        layout = Layout.of(env, window_days=LOG_WINDOW_DAYS, log_rows=self._log_rows)
        self._tmp = tempfile.TemporaryDirectory(prefix="simfleet-flamegpu-")
        minutes_file = Path(self._tmp.name) / "minutes.bin"
        minutes = np.zeros((env.days + 1, layout.airframes), dtype=np.uint16)
        minutes[:, : env.n] = env.minutes
        minutes.tofile(minutes_file)
        self._bus = DayBus(minutes_file=str(minutes_file), types=env.n_types)
        try:
            model, self._agent = describe(self.fg, env, layout, self._bus)
            with sigint_guard("creating the FLAME GPU simulation"):
                sim = self.fg.CUDASimulation(model)
                config = sim.SimulationConfig()
                config.random_seed = RANDOM_SEED
                config.verbosity = self.fg.Verbosity_Quiet
                config.telemetry = False
                sim.applyConfig()
        except Exception as exc:
            raise SimulationError(f"FLAME GPU could not create the lifecycle simulation: {exc}") from exc
        self._sim = sim
        self._pending: list[_DayTotals] = []
        self._log_start = 0

    def create(self) -> None:
        """The population at D0 (the numpy backend's, see the module docstring), loaded onto the device."""
        self._initial.create()
        self.load_state_dict(self._initial.state_dict())

    def step(self, days: int) -> None:
        """Simulate ``days`` more days (stopping at the horizon); every MP2 row is on the host afterwards."""
        stop = min(self._day + max(0, days), self.env.days)
        while self._day < stop:
            self._one_day(stop)

    def _one_day(self, stop: int) -> None:
        s, bus, sim = self._day, self._bus, self._sim
        row = s - self._log_start
        export = self._log_rows and (self.debug or row + 1 == LOG_WINDOW_DAYS or s + 1 == stop)
        bus.quota = self.targets[s + 1]
        bus.export_to = str(Path(self._tmp.name) / f"rows-{s}-{uuid.uuid4().hex}.bin") if export else None
        self._stamp += 1
        try:
            sim.setEnvironmentPropertyUInt("day", s)
            sim.setEnvironmentPropertyUInt("stamp", self._stamp)
            sim.setEnvironmentPropertyUInt("log_row", row)
            sim.step()
        except Exception as exc:
            raise SimulationError(f"FLAME GPU failed on day {s}: {exc}") from exc
        if bus.error is not None:
            error, bus.error = bus.error, None
            raise SimulationError(f"a FLAME GPU host function failed on day {s}: {error!r}") from error
        self._pending.append(self._totals(s))
        if export and bus.export_to is not None:
            self._take_rows(bus.export_to)
            self._log_start = s + 1
        elif not self._log_rows:
            self._commit(self._pending.pop(), None)
        self._day = s + 1

    def _totals(self, s: int) -> _DayTotals:
        """The day's per-type figures, from ``grant``'s tallies and grants."""
        bus = self._bus
        tallies = bus.tallies
        eligible = tallies[:, ELIGIBLE_COLUMN : ELIGIBLE_COLUMN + CLASSES].T
        take = np.array(bus.take, dtype=np.int64)
        transitions = np.stack(
            [
                eligible[0] - take[0],
                tallies[:, TO4_COLUMN],
                tallies[:, TO6_COLUMN],
                take[1],
                take[2],
                take[3],
                tallies[:, REPAIRED_COLUMN],
                tallies[:, DELIVERED_COLUMN],
            ]
        ).astype(np.int64)
        counts = tallies[:, COUNT_COLUMN : COUNT_COLUMN + 7].T.astype(np.int64)
        return _DayTotals(s, list(bus.quota), list(bus.shortfall), counts, transitions, eligible.tolist())

    def _take_rows(self, path: str) -> None:
        """Read the exported per-airframe rows of the pending days and commit those days in order."""
        raw = np.fromfile(path, dtype=np.int32)
        os.remove(path)
        rows = raw.reshape(LOG_WINDOW_DAYS, len(AIRFRAME_STATE), -1)[:, :, : self.env.n]
        pending, self._pending = self._pending, []
        for offset, totals in enumerate(pending):
            self._commit(totals, rows[offset])

    def _commit(self, totals: _DayTotals, rows: npt.NDArray[np.int32] | None) -> None:
        """One day into the MP2 log and the run's counters (checked first in debug mode)."""
        columns: dict[str, Any] = dict.fromkeys(AIRFRAME_STATE)
        if rows is not None:
            columns = dict(zip(AIRFRAME_STATE, rows, strict=True))
        record = DayRecord(
            day=totals.day,
            quota=totals.quota,
            shortfall=totals.shortfall,
            counts=totals.counts,
            transitions=totals.transitions,
            **columns,
        )
        if self.debug:
            # check_day reads only env, acn_internal and blocks (index arrays here: airframes stay in idx order).
            check_day(cast(NumpyBackend, self), record, self._last_sne, self._last_ppr, totals.eligible)
            self._last_sne, self._last_ppr = columns["sne"], columns["ppr"]
        self._log.add(record)
        self.transitions += totals.transitions
        self.shortfall_days += np.asarray(totals.shortfall) > 0
        self.shortfall_aircraft_days += np.asarray(totals.shortfall, dtype=np.int64)

    def read_chunk(self) -> tuple[Columns, Columns]:
        """MP2 of the days stepped since the last read: (per airframe and day, per type and day)."""
        return self._log.take()

    def state_dict(self) -> dict[str, Any]:
        """The day, every agent variable (int64, idx order; dates as day numbers, NO_DATE for none), counters."""
        population = self.fg.AgentVector(self._agent)
        try:
            self._sim.getPopulationData(population)
        except Exception as exc:
            raise SimulationError(f"FLAME GPU could not hand back the population: {exc}") from exc
        if population.size() != self.env.n:
            raise SimulationError(f"FLAME GPU holds {population.size()} airframes, expected {self.env.n}")
        values = {name: np.zeros(self.env.n, dtype=np.int64) for name in CORE_STATE_FIELDS}
        for i in range(population.size()):
            agent = population[i]
            idx = agent.getVariableUInt("idx")
            for name in CORE_STATE_FIELDS:
                read = agent.getVariableUInt if name in UINT_VARIABLES else agent.getVariableInt
                values[name][idx] = read(name)
        state: dict[str, Any] = {"day": self._day, "backend": self.name, **values, **plain_state(self.env)}
        state["transitions"] = self.transitions.copy()
        state["shortfall_days"] = self.shortfall_days.copy()
        state["shortfall_aircraft_days"] = self.shortfall_aircraft_days.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (after :meth:`build` with the same environment); pending MP2 is dropped."""
        env, n = self.env, self.env.n
        values = {}
        for name in CORE_STATE_FIELDS:
            values[name] = np.asarray(state[name], dtype=np.int64)
            if values[name].shape != (n,):
                raise InvariantError(f"state field {name} has shape {values[name].shape}, expected ({n},)")
        day = int(state["day"])
        if not 0 <= day <= env.days:
            raise InvariantError(f"state day {day} is outside the horizon 0..{env.days}")
        static = {
            "idx": np.arange(n),
            "ac_type": env.type_code,
            "ll": env.ll,
            "oh": env.oh,
            "br": env.br,
            "repair_time": env.repair_time,
            "partout_time": env.partout_time,
            "repair_minus_assembly": env.repair_time - env.assembly_time,
            "delivery_day": env.delivery_day,
        }
        # Plain Python ints for the SWIG-wrapped setters (numpy scalars are not Python ints).
        columns = {name: np.asarray(v).tolist() for name, v in {**static, **values}.items()}
        unsigned = [name for name in columns if name in UINT_VARIABLES]
        signed = [name for name in columns if name in INT_VARIABLES]
        population = self.fg.AgentVector(self._agent, n)
        for i in range(n):
            agent = population[i]
            for name in unsigned:
                agent.setVariableUInt(name, columns[name][i])
            for name in signed:
                agent.setVariableInt(name, columns[name][i])
        try:
            self._sim.setPopulationData(population)
        except Exception as exc:
            raise SimulationError(f"FLAME GPU refused the population: {exc}") from exc
        self._day, self._log_start, self._pending = day, day, []
        self._last_sne, self._last_ppr = values["sne"], values["ppr"]
        self.transitions = np.zeros((8, env.n_types), dtype=np.int64)
        self.shortfall_days = np.zeros(env.n_types, dtype=np.int64)
        self.shortfall_aircraft_days = np.zeros(env.n_types, dtype=np.int64)
        self.transitions[:] = np.asarray(state.get("transitions", self.transitions), dtype=np.int64)
        self.shortfall_days[:] = np.asarray(state.get("shortfall_days", self.shortfall_days), dtype=np.int64)
        self.shortfall_aircraft_days[:] = np.asarray(state.get("shortfall_aircraft_days", 0), dtype=np.int64)
        self._log = Mp2Log(env, np.arange(n, dtype=np.intp), full=self.log == "full")
