"""A local study tells how far it is, and telling it changes nothing in the answer."""

from __future__ import annotations

import pytest

from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.runner import run_replications

from .helpers import fork_join, one_queue, without_wall_clock


def test_progress_in_one_process_follows_simulated_time_and_leaves_results_unchanged() -> None:
    scenario = fork_join(horizon_s=2_000.0)
    heard: list[tuple[float, str]] = []
    summaries = run_replications(scenario, replications=2, seed=11, processes=1,
                                 on_progress=lambda fraction, label: heard.append((fraction, label)))  # fmt: skip
    fractions = [fraction for fraction, _ in heard]
    assert len(heard) >= 100 and fractions == sorted(fractions) and 0 < fractions[0] < 0.1
    assert 0.45 <= max(f for f, label in heard if label.startswith("replication 1/2")) <= 0.5
    assert fractions[-1] <= 1.0 and heard[-1][1].startswith("replication 2/2")
    alone = [run_replication(scenario, 11, i) for i in range(2)]
    assert [without_wall_clock(s) for s in summaries] == [without_wall_clock(s) for s in alone]


def test_progress_in_a_pool_counts_finished_replications() -> None:
    heard: list[tuple[float, str]] = []
    run_replications(fork_join(horizon_s=500.0), replications=3, seed=2, processes=2,
                     on_progress=lambda fraction, label: heard.append((fraction, label)))  # fmt: skip
    assert heard == [(i / 3, f"{i}/3 replications done, 2 processes") for i in (1, 2, 3)]


@pytest.mark.timeout(120)  # the old slicing never ended here
def test_a_drain_that_jumps_far_ahead_is_one_slice_not_billions() -> None:
    # 0.5 work units at 1e-9 units/s: each request is served for 5e8 simulated seconds after a 200 s horizon. Run in
    # slices of 2 s of simulated time, that drain was 2.5e8 empty slices (a hang); the next slice now starts at the
    # next event.
    scenario = one_queue(6.0, 0.5, horizon_s=200.0, per_tool_cap=1e-9)
    heard: list[float] = []
    (stepped,) = run_replications(scenario, replications=1, seed=3, processes=1,
                                  on_progress=lambda fraction, label: heard.append(fraction))  # fmt: skip
    assert without_wall_clock(stepped) == without_wall_clock(run_replication(scenario, 3, 0))
    assert stepped.events > 0 and heard[-1] == 1.0
