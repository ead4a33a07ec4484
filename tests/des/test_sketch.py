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


def test_batched_buckets_equal_one_ddsketch_add_per_value():
    """add_many fills the store's bins a batch at a time; the buckets and quantiles are those of ddsketch's own add."""
    from ddsketch import DDSketch

    rng = np.random.default_rng(3)
    batches = [[*rng.lognormal(0.0, 2.0, 500).tolist(), 0.0] for _ in range(20)]
    batches.append(rng.exponential(1e4, 300).tolist())  # keys above every earlier one: the store grows upwards
    batches.append(rng.exponential(1e-4, 300).tolist())  # and below
    ours, reference = LatencySketch(), DDSketch(relative_accuracy=LatencySketch().relative_accuracy)
    for batch in batches:
        ours.add_many(batch)
        for value in batch:
            reference.add(value)
    store = reference._store
    expected = {i + store.offset: n for i, n in enumerate(store.bins) if n}
    data = ours.to_data()
    assert dict(zip(data.keys, data.counts, strict=True)) == expected
    assert data.zero_count == reference._zero_count == 20
    for q in (0.0, 0.01, 0.5, 0.95, 0.999, 1.0):
        assert ours.quantile(q) == reference.get_quantile_value(q)
    again = LatencySketch.from_data(data)
    assert again.to_data() == data and again.quantile(0.95) == ours.quantile(0.95)


def test_a_sketch_with_a_bucket_count_that_is_not_positive_is_refused():
    data = LatencySketch().to_data()
    bad = type(data)(relative_accuracy=data.relative_accuracy, keys=[3], counts=[0.0], zero_count=0.0, count=0,
                     sum=0.0, min=None, max=None)  # fmt: skip
    with pytest.raises(ValueError, match="positive count"):
        LatencySketch.from_data(bad)
