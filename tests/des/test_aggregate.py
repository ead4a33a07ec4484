import math
import random

import pytest
from scipy import stats

from simfleet.shared.messages.des import Stat
from simfleet.worker.des.aggregate import aggregate, scalar_stats
from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.runner import run_replications, run_study

from .helpers import fork_join


def test_scalar_stats_give_mean_std_and_student_t_half_width():
    values = [1.0, 2.0, 4.0, 7.0]
    result = scalar_stats(values)
    std = math.sqrt(sum((v - 3.5) ** 2 for v in values) / 3)
    assert result.mean == 3.5
    assert result.std == pytest.approx(std)
    assert result.ci95 == pytest.approx(stats.t.ppf(0.975, 3) * std / 2)
    assert scalar_stats([None, 2.0, math.nan]) == Stat(mean=2.0, std=None, ci95=None, n=1)


@pytest.fixture(scope="module")
def summaries():
    return [run_replication(fork_join(horizon_s=800), seed=3, replication=i) for i in range(4)]


def test_aggregate_does_not_depend_on_the_order_results_arrive(summaries):
    shuffled = summaries[:]
    random.Random(0).shuffle(shuffled)
    assert aggregate(shuffled) == aggregate(summaries)


def test_aggregate_reports_every_scalar_and_merged_quantiles(summaries):
    agg = aggregate(summaries)
    assert agg.replications == 4
    block = agg.types["r"]
    assert block.mean_s.n == 4
    assert block.mean_s.mean == pytest.approx(sum(s.types["r"].mean_s for s in summaries) / 4)
    assert block.merged.completed == sum(s.types["r"].completed for s in summaries)
    assert block.p95_s.ci95 > 0
    assert set(agg.resources) == {"cpu", "net", "mem"}
    assert agg.resources["cpu"]["utilisation"].n == 4
    assert list(agg.resources["cpu"]) == [
        "capacity", "offered_load", "utilisation", "mean_consumers", "max_consumers", "mean_waiting", "max_waiting",
        "wasted_work_per_s",
    ]
    assert list(agg.resources["mem"]) == [
        "capacity", "utilisation", "mean_in_use", "max_in_use", "mean_waiting", "max_waiting"
    ]
    assert agg.little.lambda_w.mean > 0
    assert agg.study_id == ""


def test_process_pool_runner_gives_the_serial_answer(summaries):
    pooled = run_replications(fork_join(horizon_s=800), replications=4, seed=3, processes=2)
    assert aggregate(pooled).types == aggregate(summaries).types
    assert run_study(fork_join(horizon_s=800), replications=4, seed=3, processes=1).types == aggregate(summaries).types
