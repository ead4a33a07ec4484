import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fleets import random_inputs, run_model
from .oracle import oracle_run


def assert_same(ours, theirs):
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 14), days=st.integers(1, 40), chunk=st.integers(1, 50))
def test_vectorised_backend_equals_the_per_airframe_oracle(seed, n, days, chunk):
    inputs = random_inputs(np.random.default_rng(seed), n, days)
    airframe, daily = run_model(inputs, chunk_days=chunk)
    want_airframe, want_daily = oracle_run(inputs)
    assert_same(airframe, want_airframe)
    assert_same(daily, want_daily)
