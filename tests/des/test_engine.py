import tracemalloc

import pytest

from simfleet.worker.des import engines
from simfleet.worker.des.engine import Simulation, run_replication
from simfleet.worker.des.scenario import parse_scenario

from .helpers import fork_join, one_queue, without_wall_clock


def test_same_scenario_and_seed_give_identical_output():
    first = without_wall_clock(run_replication(fork_join(), seed=5))
    second = without_wall_clock(run_replication(fork_join(), seed=5))
    assert first == second


def test_other_seed_or_replication_changes_the_draws():
    base = run_replication(fork_join(), seed=5).overall.mean_s
    assert run_replication(fork_join(), seed=6).overall.mean_s != base
    assert run_replication(fork_join(), seed=5, replication=1).overall.mean_s != base


def two_independent_types(rate_a: float):
    return parse_scenario(
        {
            "name": "independent",
            "horizon_s": 2_000,
            "resources": {"x": {"capacity": 1.0}, "y": {"capacity": 1.0}},
            "tools": {
                "tx": {"work": {"x": {"dist": "exponential", "mean": 0.5}}},
                "ty": {"work": {"y": {"dist": "lognormal", "mean": 0.5, "cv": 1.5}}},
            },
            "request_types": {
                "a": {"rate_per_min": rate_a, "nodes": {"n": {"tool": "tx"}}},
                "b": {"rate_per_min": 40, "nodes": {"n": {"tool": "ty"}}},
            },
        }
    )


def test_changing_one_types_rate_leaves_the_other_types_draws_unchanged():
    slow = run_replication(two_independent_types(20), seed=11)
    fast = run_replication(two_independent_types(80), seed=11)
    assert slow.types["a"].completed != fast.types["a"].completed
    assert slow.types["b"] == fast.types["b"]


def test_weighted_sharing_gives_each_consumer_its_share():
    scenario = parse_scenario(
        {
            "name": "weights",
            "horizon_s": 150,
            "resources": {"cpu": {"capacity": 4.0}},
            "tools": {"t": {"work": {"cpu": 3.0}}},
            "request_types": {
                "light": {"rate_per_min": 0.6, "arrival": "deterministic", "nodes": {"n": {"tool": "t"}}},
                "heavy": {"rate_per_min": 0.6, "arrival": "deterministic", "weight": 3, "nodes": {"n": {"tool": "t"}}},
            },
        }
    )
    summary = run_replication(scenario, seed=0)
    # Both arrive at t=100: heavy runs at 3/4 of 4 = 3 units/s and ends after 1 s; light did 1 unit by then and
    # finishes its last 2 units alone at 4 units/s.
    assert summary.types["heavy"].max_s == pytest.approx(1.0, abs=1e-12)
    assert summary.types["light"].max_s == pytest.approx(1.5, abs=1e-12)


def test_per_tool_cap_limits_a_lone_tool():
    scenario = parse_scenario(
        {
            "name": "cap",
            "horizon_s": 150,
            "resources": {"cpu": {"capacity": 8.0, "per_tool_cap": 1.0}},
            "tools": {"t": {"work": {"cpu": 3.0}}},
            "request_types": {"r": {"rate_per_min": 0.6, "arrival": "deterministic", "nodes": {"n": {"tool": "t"}}}},
        }
    )
    assert run_replication(scenario, seed=0).overall.max_s == pytest.approx(3.0, abs=1e-12)


def test_space_resource_admits_fifo_and_holds_for_the_whole_run():
    scenario = parse_scenario(
        {
            "name": "space",
            "horizon_s": 150,
            "resources": {"cpu": {"capacity": 10.0}, "gpu_mem": {"kind": "space", "capacity": 1.0}},
            "tools": {"t": {"work": {"cpu": 2.0}, "space": {"gpu_mem": 1.0}}},
            "request_types": {
                "r": {
                    "rate_per_min": 0.6,
                    "arrival": "deterministic",
                    "nodes": {"a": {"tool": "t"}, "b": {"tool": "t"}},
                }
            },
        }
    )
    summary = run_replication(scenario, seed=0)
    # Only one tool fits: the second waits for the first (0.2 s at 10 units/s) then runs its own 0.2 s.
    assert summary.overall.max_s == pytest.approx(0.4, abs=1e-12)
    assert summary.resources["gpu_mem"].max_waiting == 1


def test_warmup_requests_are_simulated_but_not_counted():
    summary = run_replication(fork_join(), seed=1)
    arrived = summary.overall.arrived
    # 90 requests a minute over the 2,900 s window, not the 3,000 s horizon.
    assert arrived == pytest.approx(90 / 60 * 2_900, rel=0.05)
    assert summary.overall.completed == arrived


def test_saturated_system_stops_at_the_horizon_and_reports_unstable():
    summary = run_replication(one_queue(90, {"dist": "exponential", "mean": 1.0}, horizon_s=2_000), seed=2)
    assert summary.stable is False
    assert "cpu" in summary.unstable_reason
    assert summary.stopped_at_horizon is True
    assert summary.end_time_s == 2_000
    assert summary.in_flight > 500
    assert summary.overall.unfinished == summary.in_flight


def test_in_flight_guard_stops_a_runaway_run_early():
    scenario = parse_scenario(
        {
            "name": "runaway",
            "horizon_s": 10_000,
            "max_in_flight": 50,
            "resources": {"cpu": {"capacity": 1.0}, "mem": {"kind": "space", "capacity": 1}},
            "tools": {"t": {"work": {"cpu": 0.01}, "space": {"mem": 1}}, "slow": {"work": {"cpu": 5.0}}},
            "request_types": {
                "r": {"rate_per_min": 120, "nodes": {"a": {"tool": "slow"}, "b": {"tool": "t", "after": ["a"]}}}
            },
        }
    )
    summary = run_replication(scenario, seed=0)
    assert summary.stable is False
    assert summary.unstable_reason == "more than 50 requests in flight"
    assert summary.end_time_s < 10_000


def test_without_drain_the_run_stops_at_the_horizon_with_requests_unfinished():
    drained = run_replication(one_queue(54, {"dist": "exponential", "mean": 1.0}, horizon_s=2_000), seed=3)
    assert drained.stable and drained.in_flight == 0
    assert drained.end_time_s > 2_000
    data = one_queue(54, {"dist": "exponential", "mean": 1.0}, horizon_s=2_000).to_dict()
    stopped = run_replication(parse_scenario({**data, "drain": False}), seed=3)
    assert stopped.stopped_at_horizon is True
    assert stopped.end_time_s == 2_000
    assert stopped.in_flight > 0
    assert stopped.overall.completed + stopped.in_flight == drained.overall.completed


def test_resource_figures_match_the_offered_load():
    summary = run_replication(one_queue(42, {"dist": "exponential", "mean": 1.0}, horizon_s=50_000), seed=4)
    cpu = summary.resources["cpu"]
    assert cpu.offered_load == pytest.approx(0.7)
    assert cpu.utilisation == pytest.approx(0.7, rel=0.03)
    assert cpu.mean_consumers == pytest.approx(0.7 / 0.3, rel=0.1)
    assert summary.events_per_s > 0
    assert summary.events == 2 * summary.overall.completed + 2


def test_trace_writes_one_line_per_event_kind():
    import io

    out = io.StringIO()
    sim = Simulation(fork_join(horizon_s=200), seed=1, trace=out)
    sim.run()
    kinds = {line.split()[1] for line in out.getvalue().splitlines()}
    assert {"arrive", "start", "done", "finish", "warmup-end", "horizon"} <= kinds


@pytest.mark.parametrize("engine, factor", [("python", 10), ("compiled", 100)])
def test_memory_does_not_grow_with_the_number_of_requests(engine, factor):
    # numpy reports its arrays to tracemalloc, so the compiled kernel's tables count as the Python engine's objects do.
    engines.prepare(engine)

    def peak(horizon: float) -> int:
        tracemalloc.start()
        scenario = one_queue(48, {"dist": "exponential", "mean": 1.0}, horizon_s=horizon)
        engines.run_replication(scenario, 1, 0, engine)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    # 5 thousand requests, and 50 thousand (Python) or half a million (compiled): a leak would be 10x or 100x.
    small, large = peak(6_250), peak(6_250 * factor)
    assert large < 1.5 * small, (small, large)


def test_latency_quantiles_are_ordered_and_bounded_by_the_maximum():
    figures = run_replication(one_queue(30, 1.0, horizon_s=20_000, max_active=1), seed=0).overall
    assert 1.0 <= figures.p50_s <= figures.p95_s <= figures.p99_s <= figures.max_s * 1.01
    assert figures.mean_s >= 1.0
