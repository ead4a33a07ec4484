"""Work distributions of tool templates.

A distribution is parsed once from the scenario (a bare number means deterministic) and then sampled in batches:
the engine asks for blocks of draws from the template's own random stream, which keeps the per-event cost low and
keeps the draws a pure function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simfleet.shared.errors import ScenarioError
from simfleet.worker.des.limits import MAX_CV, MAX_EMPIRICAL_VALUES, check_number, show

KINDS = ("deterministic", "exponential", "lognormal", "uniform", "empirical")


@dataclass(frozen=True)
class Distribution:
    """A non-negative work distribution.

    Attributes:
        kind: one of ``deterministic``, ``exponential``, ``lognormal``, ``uniform``, ``empirical``.
        mean: the mean (for ``uniform`` and ``empirical`` derived from the other fields).
        cv: coefficient of variation, for ``lognormal``.
        low: lower bound, for ``uniform``.
        high: upper bound, for ``uniform``.
        values: the equally likely values, for ``empirical``.
    """

    kind: str
    mean: float
    cv: float = 0.0
    low: float = 0.0
    high: float = 0.0
    values: tuple[float, ...] = ()

    def sample(self, rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
        """Draw ``size`` values from ``rng``."""
        if self.kind == "deterministic":
            return np.full(size, self.mean)
        if self.kind == "exponential":
            return rng.standard_exponential(size) * self.mean
        if self.kind == "lognormal":
            sigma2 = math.log1p(self.cv * self.cv)
            mu = math.log(self.mean) - sigma2 / 2.0
            return rng.lognormal(mu, math.sqrt(sigma2), size)
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, size)
        return np.asarray(self.values, dtype=np.float64)[rng.integers(0, len(self.values), size)]

    @property
    def is_random(self) -> bool:
        """Whether sampling consumes random numbers."""
        return self.kind != "deterministic"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form accepted by :func:`parse_distribution`."""
        if self.kind == "deterministic":
            return {"dist": "deterministic", "value": self.mean}
        if self.kind == "exponential":
            return {"dist": "exponential", "mean": self.mean}
        if self.kind == "lognormal":
            return {"dist": "lognormal", "mean": self.mean, "cv": self.cv}
        if self.kind == "uniform":
            return {"dist": "uniform", "low": self.low, "high": self.high}
        return {"dist": "empirical", "values": list(self.values)}


_FIELDS = {
    "deterministic": {"value"},
    "exponential": {"mean"},
    "lognormal": {"mean", "cv"},
    "uniform": {"low", "high"},
    "empirical": {"values"},
}


def _number(spec: Any, source: str, key: str, *, positive: bool = False) -> float:
    return check_number(spec, source, key, positive=positive)


def parse_distribution(spec: Any, source: str, key: str) -> Distribution:
    """Parse a work amount: a number (deterministic) or a mapping with ``dist`` and its parameters.

    Raises:
        ScenarioError: naming ``source`` and ``key`` when the form or a value is wrong.
    """
    if not isinstance(spec, dict):
        return Distribution("deterministic", _number(spec, source, key))
    kind = spec.get("dist")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ScenarioError(
            f"'dist' must be one of {', '.join(KINDS)}, got {show(kind)}", source=source, key=f"{key}.dist"
        )
    unknown = sorted(k if isinstance(k, str) else show(k) for k in set(spec) - _FIELDS[kind] - {"dist"})
    if unknown:
        raise ScenarioError(
            f"unknown key(s) {unknown} for a {kind} distribution (expected {sorted(_FIELDS[kind])})",
            source=source,
            key=f"{key}.{unknown[0]}",
        )
    missing = _FIELDS[kind] - set(spec)
    if missing:
        raise ScenarioError(f"missing {sorted(missing)}", source=source, key=f"{key}.{sorted(missing)[0]}")
    if kind == "deterministic":
        return Distribution(kind, _number(spec["value"], source, f"{key}.value"))
    if kind == "exponential":
        return Distribution(kind, _number(spec["mean"], source, f"{key}.mean", positive=True))
    if kind == "lognormal":
        mean = _number(spec["mean"], source, f"{key}.mean", positive=True)
        cv = check_number(spec["cv"], source, f"{key}.cv", positive=True, upper=MAX_CV)
        return Distribution(kind, mean, cv=cv)
    if kind == "uniform":
        low = _number(spec["low"], source, f"{key}.low")
        high = _number(spec["high"], source, f"{key}.high")
        if high < low:
            raise ScenarioError(f"high ({high}) is below low ({low})", source=source, key=f"{key}.high")
        return Distribution(kind, (low + high) / 2.0, low=low, high=high)
    values = spec["values"]
    if not isinstance(values, list) or not values:
        raise ScenarioError("expected a non-empty list of numbers", source=source, key=f"{key}.values")
    if len(values) > MAX_EMPIRICAL_VALUES:
        raise ScenarioError(
            f"{len(values)} values; an empirical distribution has at most {MAX_EMPIRICAL_VALUES}",
            source=source,
            key=f"{key}.values",
        )
    parsed = tuple(_number(v, source, f"{key}.values[{i}]") for i, v in enumerate(values))
    return Distribution(kind, math.fsum(parsed) / len(parsed), values=parsed)
