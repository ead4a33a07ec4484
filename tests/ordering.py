"""The order the suite's processes take tests in: the longest tests first, one after another on every process.

``make test`` runs pytest-xdist with work stealing: each of the W processes is first handed a contiguous slice of
the collection (the k-th of ``remaining // (W - k)`` items), and a process that runs dry steals the back half of
the longest queue. A test that takes a minute and happens to sit late in a slice starts late, and the run ends with
it running alone while the other processes idle. So the tests measured longest (``pytest --durations``, on this
2-core machine) are moved to the heads of the slices, the longest to the first process, the next to the second,
and so on round the processes; the rest keep their order. Only the position changes: every test still runs.
"""

from __future__ import annotations

import os

import pytest

LONGEST = (
    "tests/docs/test_docs.py::test_every_command_and_code_block_runs_as_shown[documents with fleet blocks]",
    "tests/docs/test_docs.py::test_every_command_and_code_block_runs_as_shown[documents without]",
    "tests/fleet/test_races.py::test_an_owner_paused_while_the_watchdog_hands_its_job_on_cannot_write_when_it_wakes",
    "tests/fuzz/test_fuzz.py::test_fuzz_sample[scenario-2]",
    "tests/fuzz/test_fuzz.py::test_fuzz_sample[scenario-0]",
    "tests/fleet/test_secrets.py::test_fleet_up_generates_private_passwords_that_no_process_argument_or_readable_file_shows",
    "tests/fleet/test_races.py::test_a_gpu_worker_killed_while_loading_hands_the_job_on_within_seconds",
    "tests/fleet/test_redis_outage.py::test_a_lifecycle_job_completes_across_a_redis_restart",
    "tests/fleet/test_lifecycle_job.py::test_killing_the_whole_owner_lets_a_second_worker_finish",
    "tests/fleet/test_batches.py::test_a_worker_killed_mid_batch_has_only_its_unrecorded_replications_run_again",
    "tests/fleet/test_deploy_healthchecks.py::test_worker_probe_passes_for_this_hosts_worker_and_fails_for_another_hosts",
    "tests/fleet/test_lifecycle_job.py::test_the_watchdog_command_hands_a_dead_owners_job_to_the_next_worker",
    "tests/fleet/test_no_shared_filesystem.py::test_a_job_completes_across_machines_that_share_no_directory",
    "tests/fleet/test_lifecycle_job.py::test_a_worker_over_its_memory_budget_evicts_and_restores_jobs_without_mixing_them",
    "tests/fuzz/test_fuzz.py::test_fuzz_sample[scenario-1]",
    "tests/fleet/test_lifecycle_job.py::test_killing_the_owners_pool_process_mid_execute_resumes_from_the_checkpoint",
)
"""Node ids, longest first (measured 2026-12-03: 71 s down to 12 s); a test renamed away is simply not moved."""


def slice_sizes(count: int, processes: int) -> list[int]:
    """The sizes of the contiguous slices xdist's work-stealing scheduler first hands ``processes`` processes."""
    sizes = []
    for k in range(processes):
        sizes.append(count // (processes - k))
        count -= sizes[-1]
    return sizes


def longest_first(items: list[pytest.Item], processes: int) -> list[pytest.Item]:
    """``items`` with the :data:`LONGEST` tests at the heads of the processes' slices, round the processes."""
    rank = {node_id: i for i, node_id in enumerate(LONGEST)}
    long = sorted((item for item in items if item.nodeid in rank), key=lambda item: rank[item.nodeid])
    if processes < 2 or not long:
        return items
    rest = [item for item in items if item.nodeid not in rank]
    heads: list[list[pytest.Item]] = [[] for _ in range(processes)]
    for i, item in enumerate(long):
        heads[i % processes].append(item)
    ordered: list[pytest.Item] = []
    for head, size in zip(heads, slice_sizes(len(items), processes), strict=True):
        take = max(size - len(head), 0)
        ordered += head + rest[:take]
        rest = rest[take:]
    return ordered + rest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder in every xdist process alike (they must collect the same list); a plain run keeps its order."""
    items[:] = longest_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")))
