"""Saving and resuming a compiled replication, and the views :func:`~simfleet.worker.des.summary.build_summary` reads.

A compiled run's state is its arrays (raw bytes with dtype and shape), its generators, the arrival processes' streams,
its sketches and a few flags: msgpack-safe plain data of the kernel's own kind (``compiled-v1``, :data:`STATE_VERSION`);
the Python engine's states (:mod:`simfleet.worker.des.state`) are another kind, and neither engine reads the other's.
The model tables and scratch lists are not saved: they are rebuilt from the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from simfleet.shared.errors import SimulationError
from simfleet.shared.messages import decode, to_wire
from simfleet.shared.messages.des import SketchData
from simfleet.worker.des import kernel_layout as L
from simfleet.worker.des import kernel_resources as KR
from simfleet.worker.des.sketch import LatencySketch
from simfleet.worker.des.streams import generator_state, restore_generator

if TYPE_CHECKING:
    from simfleet.worker.des.compiled import CompiledSimulation

STATE_VERSION = 3
"""3: model v2 failures (per-tool records, failure latencies, wasted work, four-column events); 2: model v2 without
failures. Older versions are refused."""
STATE_KIND = "compiled-v1"
STATE_ARRAYS = (
    "gf", "gi", "rate_f", "rate_i", "next_times", "rh_kf", "rh_ki", "rh_pf", "rq_kf", "rq_ki", "rq_pf", "tool_rs",
    "tool_vf", "space_f", "space_i", "sq_kf", "sq_ki", "sq_pf", "tool_sq", "req_f", "req_i", "req_free", "req_a",
    "tool_i", "tool_free", "tool_jw", "work_buf", "work_pos", "arr_buf", "arr_pos", "dec_buf", "dec_pos", "attr_buf",
    "attr_pos", "lat_buf", "lat_n", "counts", "node_fig", "win_f", "win_n", "fail_buf", "fail_n", "ev_kf", "ev_ki",
    "ev_pf",
)  # fmt: skip
"""The arrays that make up a run's state (the model tables and scratch lists are rebuilt from the scenario)."""


def _array_data(array: Any) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}


def _array_from(data: dict[str, Any]) -> Any:
    return np.frombuffer(data["data"], dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()


def _sketches(saved: list[Any]) -> list[LatencySketch]:
    return [LatencySketch.from_data(decode(SketchData, d, what="DES state sketch")) for d in saved]


def save_state(sim: CompiledSimulation) -> dict[str, Any]:
    """The whole run's state as msgpack-serialisable data (see the module docstring)."""
    return {
        "version": STATE_VERSION,
        "kind": STATE_KIND,
        "scenario": sim.scenario.name,
        "seed": sim.seed,
        "replication": sim.replication,
        "arrays": {name: _array_data(getattr(sim, name)) for name in STATE_ARRAYS},
        "arrival_rngs": [generator_state(rng) for rng in sim.arrival_rngs],
        "work_rngs": [generator_state(rng) for rng in sim.work_rngs],
        "decision_rngs": [generator_state(rng) for rng in sim.decision_rngs],
        "attribute_rngs": [generator_state(rng) for rng in sim.attribute_rngs],
        "processes": [None if p is None else p.state() for p in sim.processes],
        "sketches": [to_wire(sketch.to_data()) for sketch in sim.sketches],
        "fail_sketches": [to_wire(sketch.to_data()) for sketch in sim.fail_sketches],
        "unstable_reason": sim.unstable_reason,
        "stopped_at_horizon": sim.stopped_at_horizon,
        "finished": sim.finished,
        "wall_s": sim.wall_s,
    }


def check_state(state: dict[str, Any], scenario_name: str) -> None:
    """Refuse a state of another kind, version or scenario.

    Raises:
        SimulationError: naming what differs.
    """
    if state.get("version") != STATE_VERSION or state.get("kind") != STATE_KIND:
        raise SimulationError(
            f"unsupported compiled DES state (version {state.get('version')!r}, kind {state.get('kind')!r}; "
            f"expected version {STATE_VERSION}, kind {STATE_KIND!r})"
        )
    if state["scenario"] != scenario_name:
        raise SimulationError(f"state is of scenario {state['scenario']!r}, not {scenario_name!r}")


def restore_state(sim: CompiledSimulation, state: dict[str, Any]) -> None:
    """Put ``state`` (checked by :func:`check_state`) into ``sim``, freshly built from the same scenario."""
    for name in STATE_ARRAYS:
        setattr(sim, name, _array_from(state["arrays"][name]))
    sim.alloc_scratch(sim.rh_kf.shape[1])
    rngs = sim.arrival_rngs + sim.work_rngs + sim.decision_rngs + sim.attribute_rngs
    saved_rngs = state["arrival_rngs"] + state["work_rngs"] + state["decision_rngs"] + state["attribute_rngs"]
    for rng, saved in zip(rngs, saved_rngs, strict=True):
        restore_generator(rng, saved)
    for process, saved in zip(sim.processes, state["processes"], strict=True):
        if process is not None:
            process.restore(saved)
    sim.sketches = _sketches(state["sketches"])
    sim.fail_sketches = _sketches(state["fail_sketches"])
    sim.unstable_reason = state["unstable_reason"]
    sim.stopped_at_horizon = bool(state["stopped_at_horizon"])
    sim.finished = bool(state["finished"])
    sim.wall_s = float(state["wall_s"])


@dataclass
class RateView:
    """What :func:`~simfleet.worker.des.summary.build_summary` reads of a rate resource."""

    name: str
    capacity: float
    max_n: int
    max_q: int


@dataclass
class SpaceView:
    """What :func:`~simfleet.worker.des.summary.build_summary` reads of a space resource."""

    name: str
    capacity: float
    max_used: float
    max_q: int


class SummaryViews:
    """The attributes of :class:`~simfleet.worker.des.engine.Simulation` that the summary reads, over the arrays."""

    rate_names: list[str]
    space_names: list[str]
    types: list[Any]
    gi: Any
    win_f: Any
    win_n: Any
    rate_f: Any
    rate_i: Any
    space_f: Any
    space_i: Any
    counts: Any
    node_fig: Any

    @property
    def window(self) -> dict[str, Any]:
        """The window snapshots as the engine keeps them (``start`` and ``end`` once taken)."""
        window: dict[str, Any] = {}
        n_rates = len(self.rate_names)
        base = 2 + 4 * self.rate_f.shape[0]
        for key, row, flag in (("start", 0, L.HAS_START), ("end", 1, L.HAS_END)):
            if not self.gi[flag]:
                continue
            w = self.win_f[row].tolist()
            window[key] = {
                "t": w[0],
                "sys": w[1],
                "n": int(self.win_n[row]),
                "rates": [w[2 + 4 * r : 6 + 4 * r] for r in range(n_rates)],
                "spaces": [[w[base + 2 * s], 0.0, w[base + 2 * s + 1]] for s in range(len(self.space_names))],
            }
        return window

    @property
    def rates(self) -> list[RateView]:
        """The rate resources' names, capacities and maxima."""
        f, i = self.rate_f, self.rate_i
        return [
            RateView(name, float(f[r, KR.R_CAPACITY]), int(i[r, KR.R_MAX_N]), int(i[r, KR.R_MAX_Q]))
            for r, name in enumerate(self.rate_names)
        ]

    @property
    def spaces(self) -> list[SpaceView]:
        """The space resources' names, capacities and maxima."""
        f, i = self.space_f, self.space_i
        return [
            SpaceView(name, float(f[s, KR.S_CAPACITY]), float(f[s, KR.S_MAX_USED]), int(i[s, KR.S_MAX_Q]))
            for s, name in enumerate(self.space_names)
        ]

    @property
    def counted_arrivals(self) -> list[int]:
        """Requests per type that arrived in the measurement window."""
        return [int(v) for v in self.counts[:, L.C_ARRIVALS]]

    @property
    def counted_inflight(self) -> list[int]:
        """Counted requests per type still in flight."""
        return [int(v) for v in self.counts[:, L.C_COUNTED_INFLIGHT]]

    @property
    def outcomes(self) -> list[list[int]]:
        """Counted requests per type that failed and that timed out."""
        return [[int(v) for v in row] for row in self.counts[:, L.C_FAILED : L.C_TIMED_OUT + 1]]

    @property
    def node_stats(self) -> list[list[list[int]]]:
        """Per type and node key the engine's node figures (NODE_FIGURES columns)."""
        return [[self.node_fig[t.index, n].tolist() for n in range(len(t.node_keys))] for t in self.types]
