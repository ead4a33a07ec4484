import numpy as np
import pytest

from simfleet.worker.des.sketch import LatencySketch


def test_quantiles_are_within_one_percent_of_the_exact_ones():
    values = np.random.default_rng(1).lognormal(0.0, 1.5, 50_000)
    sketch = LatencySketch()
    sketch.add_many(values.tolist())
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = float(np.quantile(values, q, method="lower"))
        assert sketch.quantile(q) == pytest.approx(exact, rel=0.01)
    assert sketch.count == values.size
    assert sketch.max == values.max()
    assert sketch.mean == pytest.approx(values.mean())


def test_merged_sketches_equal_the_sketch_of_the_union():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(2.0, 3_000).tolist(), rng.exponential(5.0, 7_000).tolist()
    left, right, union = LatencySketch(), LatencySketch(), LatencySketch()
    left.add_many(a)
    right.add_many(b)
    union.add_many(a + b)
    left.merge(right)
    merged, whole = left.to_data(), union.to_data()
    assert merged.keys == whole.keys and merged.counts == whole.counts
    assert left.quantile(0.95) == union.quantile(0.95)


def test_plain_data_round_trip_keeps_every_bucket_and_figure():
    sketch = LatencySketch()
    sketch.add_many([0.0, 0.0, 1e-3, 0.5, 2.0, 2.0, 130.0])
    again = LatencySketch.from_data(sketch.to_data())
    assert again.to_data() == sketch.to_data()
    assert again.quantile(0.5) == sketch.quantile(0.5)


def test_empty_sketch_reports_nothing():
    sketch = LatencySketch()
    sketch.add_many([])
    assert sketch.count == 0
    assert np.isnan(sketch.quantile(0.5))
    assert sketch.to_data().min is None and sketch.to_data().max is None
    assert LatencySketch.from_data(sketch.to_data()).count == 0
