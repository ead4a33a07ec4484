import msgpack
import pytest

from simfleet.shared.errors import SimulationError
from simfleet.worker.des.engine import Simulation

from .helpers import fork_join, without_wall_clock


@pytest.fixture(scope="module")
def uninterrupted():
    sim = Simulation(fork_join(), seed=7)
    sim.run()
    return without_wall_clock(sim.summary())


@pytest.mark.parametrize("cut_s", [0.0, 1.0, 99.99, 1_500.0, 2_999.0, 3_000.0])
def test_saved_and_resumed_run_equals_uninterrupted_run(uninterrupted, cut_s):
    first = Simulation(fork_join(), seed=7)
    assert first.run(until_s=cut_s) is False
    wire = msgpack.packb(first.state_dict())
    resumed = Simulation.from_state(fork_join(), msgpack.unpackb(wire, strict_map_key=False))
    assert resumed.run() is True
    assert without_wall_clock(resumed.summary()) == uninterrupted


def test_state_can_be_saved_several_times_along_the_run(uninterrupted):
    sim = Simulation(fork_join(), seed=7)
    for cut in (500.0, 1_000.0, 2_500.0):
        sim.run(until_s=cut)
        sim = Simulation.from_state(fork_join(), msgpack.unpackb(msgpack.packb(sim.state_dict()), strict_map_key=False))
    sim.run()
    assert without_wall_clock(sim.summary()) == uninterrupted


def test_state_of_another_scenario_is_refused():
    sim = Simulation(fork_join(), seed=7)
    sim.run(until_s=10.0)
    state = sim.state_dict()
    state["scenario"] = "something-else"
    with pytest.raises(SimulationError, match="something-else"):
        Simulation.from_state(fork_join(), state)
