"""Random streams of a replication: one per request type (arrivals) and one per tool template (work).

Streams come from ``SeedSequence(seed, spawn_key=(replication,))``: its first child is spawned into one stream per
request type, its second into one per tool template, so changing one type's rate changes no other draw (common
random numbers across the probes of an SLA search). Model v2's draws come from its third child, spawned into three
streams per request type: decisions (failures, branches, variants), attributes, and the modulation of an arrival
process (an MMPP's states). A scenario that uses none of them draws exactly what it drew before they existed, and a
type's failure probability changes no other type's decisions.

Draws are taken in blocks and handed out one by one; the block
contents and the generator state are part of the saved engine state, so a resumed run draws exactly what an
uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simfleet.worker.des.distributions import Distribution

BLOCK = 2048


def make_generators(
    seed: int, replication: int, n_types: int, n_templates: int
) -> tuple[list[Any], list[Any], list[tuple[Any, Any, Any]]]:
    """The generators of a replication.

    Arrivals (one per type), work (one per template), and per type the (decisions, attributes, modulation)
    generators of model v2.
    """
    root = np.random.SeedSequence(seed, spawn_key=(replication,))
    arrivals_root, work_root, v2_root = root.spawn(3)
    per_type = []
    for child in v2_root.spawn(n_types):
        decisions, attributes, modulation = (np.random.Generator(np.random.PCG64(s)) for s in child.spawn(3))
        per_type.append((decisions, attributes, modulation))
    return (
        [np.random.Generator(np.random.PCG64(s)) for s in arrivals_root.spawn(n_types)],
        [np.random.Generator(np.random.PCG64(s)) for s in work_root.spawn(n_templates)],
        per_type,
    )


class UniformStream:
    """Uniform draws in [0, 1) of a request type's decisions (does an attempt fail, does a node run, which variant)."""

    __slots__ = ("buffer", "rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.buffer: list[float] = []

    def draw(self) -> float:
        """The next uniform."""
        if not self.buffer:
            block = self.rng.random(BLOCK).tolist()
            block.reverse()
            self.buffer = block
        return self.buffer.pop()


class ArrivalStream:
    """Inter-arrival gaps of one request type (seconds): exponential for Poisson, constant when deterministic.

    Gaps are unit exponentials scaled by 1/rate at use, so two rates of the same type see the same underlying draws.
    """

    __slots__ = ("buffer", "mean_gap_s", "poisson", "rng")

    def __init__(self, rng: np.random.Generator, rate_per_s: float, poisson: bool) -> None:
        self.rng = rng
        self.mean_gap_s = 1.0 / rate_per_s
        self.poisson = poisson
        self.buffer: list[float] = []

    def next_gap(self) -> float:
        """The time to the next arrival."""
        if not self.poisson:
            return self.mean_gap_s
        if not self.buffer:
            block = self.rng.standard_exponential(BLOCK).tolist()
            block.reverse()
            self.buffer = block
        return self.buffer.pop() * self.mean_gap_s


class WorkStream:
    """Work draws of one tool template: one value per rate resource it uses, in the template's resource order."""

    __slots__ = ("buffers", "constants", "dists", "left", "rng")

    def __init__(self, rng: np.random.Generator, dists: list[Distribution]) -> None:
        self.rng = rng
        self.dists = dists
        self.constants = [None if d.is_random else d.mean for d in dists]
        self.buffers: list[list[float]] = [[] for _ in dists]
        self.left = 0

    def draw(self) -> list[float]:
        """One tool run's work on each of the template's resources."""
        if not self.left:
            self._refill()
        self.left -= 1
        if len(self.buffers) == 1:
            constant = self.constants[0]
            return [self.buffers[0].pop() if constant is None else constant]
        return [c if c is not None else buf.pop() for c, buf in zip(self.constants, self.buffers, strict=True)]

    def _refill(self) -> None:
        self.left = BLOCK if any(d.is_random for d in self.dists) else 1 << 62
        for i, dist in enumerate(self.dists):
            if dist.is_random:
                block = dist.sample(self.rng, BLOCK).tolist()
                block.reverse()
                self.buffers[i] = block


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's state as msgpack-safe data (128-bit integers become strings)."""
    state: dict[str, Any] = _ints_to_str(rng.bit_generator.state)
    return state


def restore_generator(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Put a generator back into a state saved by :func:`generator_state`."""
    rng.bit_generator.state = _str_to_ints(state)


def _ints_to_str(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _ints_to_str(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"int": str(value)}
    return value


def _str_to_ints(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"int"}:
            return int(value["int"])
        return {k: _str_to_ints(v) for k, v in value.items()}
    return value
