"""The conformance suite: every backend that can run here must give the numpy backend's MP2, bit for bit.

Here only ``numpy`` runs (no CuPy, no GPU, no pyflamegpu); on a machine with CuPy the ``cupy`` case runs too.
"""

import numpy as np
import pytest

from simfleet.shared.errors import SimulationError
from simfleet.shared.lifecycle_contract import BACKENDS
from simfleet.worker.lifecycle.backends import REGISTRY, get_backend
from simfleet.worker.lifecycle.environment import build_environment

from .fleets import random_inputs


def mp2(name, env, days):
    sim = get_backend(name, debug=True)
    sim.build(env)
    sim.create()
    sim.step(days)
    return sim.read_chunk()


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_available_backend_gives_the_numpy_mp2(name, seed):
    try:
        get_backend(name)
    except SimulationError as exc:
        pytest.skip(f"{name} cannot run here: {exc}")
    env = build_environment(random_inputs(np.random.default_rng(seed), 40, 60))
    want_airframe, want_daily = mp2("numpy", env, 60)
    airframe, daily = mp2(name, env, 60)
    for column in want_airframe:
        np.testing.assert_array_equal(airframe[column], want_airframe[column], err_msg=column)
    for column in want_daily:
        np.testing.assert_array_equal(daily[column], want_daily[column], err_msg=column)


def test_the_registry_implements_exactly_the_contracts_backends():
    assert tuple(REGISTRY) == BACKENDS
