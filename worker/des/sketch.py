"""Mergeable latency sketches on top of the ``ddsketch`` package.

A replication cannot keep every latency (10 million requests must cost no more memory than 10 thousand), yet the
fleet must report quantiles of many replications as if they came from one run. DDSketch solves both: logarithmic
buckets with a relative accuracy guarantee, merged by adding bucket counts. This wrapper adds what the engine and
the messages need: batched insertion (the engine buffers latencies and flushes them with numpy), exact count, sum,
min and max, and a plain-data form for msgpack/JSON (:class:`~simfleet.shared.messages.des.SketchData`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

from simfleet.shared.messages.des import SketchData

RELATIVE_ACCURACY = 0.005
"""Quantiles are within 0.5% of the true value (the model asks for 1% or better)."""


class LatencySketch:
    """A DDSketch of non-negative latencies plus their exact count, sum, min and max."""

    def __init__(self, relative_accuracy: float = RELATIVE_ACCURACY) -> None:
        self.relative_accuracy = relative_accuracy
        self._mapping = LogarithmicMapping(relative_accuracy)
        self._store = DenseStore()
        self._sketch = BaseDDSketch(self._mapping, self._store, DenseStore(), 0.0)
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add_many(self, values: Sequence[float]) -> None:
        """Add a batch of latencies (seconds)."""
        if not values:
            return
        arr = np.asarray(values, dtype=np.float64)
        self.count += int(arr.size)
        self.sum += float(arr.sum())
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))
        positive = arr[arr > self._mapping.min_possible]
        zeros = int(arr.size - positive.size)
        if zeros:
            self._sketch.add(0.0, float(zeros))
        if positive.size:
            self._add_keys(self._keys(positive))

    def _add_keys(self, keys: np.ndarray[Any, np.dtype[np.int64]], weights: np.ndarray[Any, Any] | None = None) -> None:
        """Add one count (or ``weights``) to the bucket of each key, in one numpy step over the keys' range.

        Counts are whole numbers in floats, so the bins are the same, in any order, as one ddsketch ``add`` per value.
        """
        low, high = int(keys.min()), int(keys.max())
        counts = np.bincount(keys - low, weights=weights)
        store = self._store
        store._extend_range(low, high)  # the bins then cover low..high
        start = low - store.offset
        end = start + counts.size
        store.bins[start:end] = (np.asarray(store.bins[start:end]) + counts).tolist()
        added = float(keys.size) if weights is None else float(counts.sum())
        store.count += added
        self._sketch._count += added

    def _keys(self, values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
        scaled = np.log2(values) * self._mapping._multiplier
        keys: np.ndarray[Any, np.dtype[np.int64]] = (np.ceil(scaled) + self._mapping._offset).astype(np.int64)
        return keys

    def merge(self, other: LatencySketch) -> None:
        """Add ``other``'s counts to this sketch (exact: the result is the sketch of the union)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("cannot merge sketches of different relative accuracy")
        if other.count == 0:
            return
        self._sketch.merge(other._sketch)
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1) within the relative accuracy; NaN when empty."""
        if self.count == 0:
            return math.nan
        value = self._sketch.get_quantile_value(q)
        return float(value) if value is not None else math.nan

    @property
    def mean(self) -> float:
        """Exact mean of the added values; NaN when empty."""
        return self.sum / self.count if self.count else math.nan

    def to_data(self) -> SketchData:
        """Plain data: the non-empty buckets as parallel key and count lists, plus the exact figures."""
        bins = self._store.bins
        keys = [i + self._store.offset for i, n in enumerate(bins) if n]
        return SketchData(
            relative_accuracy=self.relative_accuracy,
            keys=keys,
            counts=[bins[k - self._store.offset] for k in keys],
            zero_count=self._sketch._zero_count,
            count=self.count,
            sum=self.sum,
            min=self.min if self.count else None,
            max=self.max if self.count else None,
        )

    @classmethod
    def from_data(cls, data: SketchData) -> LatencySketch:
        """Rebuild a sketch from :meth:`to_data` output."""
        sketch = cls(float(data.relative_accuracy))
        if data.keys:
            if len(data.keys) != len(data.counts) or min(data.counts) <= 0:
                raise ValueError("a sketch's buckets need one positive count per key")
            sketch._add_keys(np.asarray(data.keys, dtype=np.int64), np.asarray(data.counts, dtype=np.float64))
        if data.zero_count:
            sketch._sketch.add(0.0, float(data.zero_count))
        sketch.count = int(data.count)
        sketch.sum = float(data.sum)
        sketch.min = math.inf if data.min is None else float(data.min)
        sketch.max = -math.inf if data.max is None else float(data.max)
        return sketch
