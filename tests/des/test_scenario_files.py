"""The example scenarios under config/scenarios/ load, say what they promise, and survive a round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simfleet.worker.des.engine import run_replication
from simfleet.worker.des.scenario import Scenario, load_scenario, parse_scenario

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "config" / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.yaml"))
SMALL_EXAMPLES = {"npu_bottleneck"}
"""Small teaching scenarios with resources of their own (not the shared cluster), exercised by their tests."""


def load(name: str) -> Scenario:
    return load_scenario(SCENARIO_DIR / f"{name}.yaml")


def test_the_example_scenarios_exist() -> None:
    names = {path.stem for path in SCENARIO_FILES}
    examples = {"web_search_load_test", "deep_research_sla", "mixed_workload", "npu_bottleneck", "rag_with_failures"}
    assert examples <= names


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_every_scenario_file_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.source == str(path)
    assert scenario.request_types


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_to_dict_round_trips_to_an_equal_scenario(path: Path) -> None:
    scenario = load_scenario(path)
    assert parse_scenario(scenario.to_dict(), source=scenario.source) == scenario


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_every_resource_declares_its_unit(path: Path) -> None:
    scenario = load_scenario(path)
    assert all(resource.unit for resource in scenario.resources.values())


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_scenario_rates_are_below_the_capacity_bound(path: Path) -> None:
    scenario = load_scenario(path)
    assert max(scenario.offered_load().values()) < 1.0


def test_mixed_workload_is_60_30_10_per_minute() -> None:
    rates = {name: rt.rate_per_min for name, rt in load("mixed_workload").request_types.items()}
    assert rates == {"web-search": 60.0, "product-matching": 30.0, "deep-research": 10.0}


def test_mixed_workload_bottleneck_is_near_70_percent_busy() -> None:
    load_by_resource = load("mixed_workload").offered_load()
    bottleneck = max(load_by_resource, key=load_by_resource.__getitem__)
    assert bottleneck == "npu"
    assert 0.65 <= load_by_resource[bottleneck] <= 0.75


def test_web_search_load_test_is_100_per_minute_for_one_hour_with_10_replications() -> None:
    scenario = load("web_search_load_test")
    assert {name: rt.rate_per_min for name, rt in scenario.request_types.items()} == {"web-search": 100.0}
    assert scenario.horizon_s == 3600.0
    assert 0 < scenario.warmup_s < scenario.horizon_s
    assert scenario.replications == 10


def test_deep_research_sla_asks_for_max_throughput_with_p95_below_30_s() -> None:
    scenario = load("deep_research_sla")
    assert scenario.sla is not None
    assert (scenario.sla.request_type, scenario.sla.metric, scenario.sla.threshold_s, scenario.sla.scale) == (
        "deep-research",
        "p95",
        30.0,
        "type",
    )
    assert scenario.request_types["deep-research"].rate_per_min < scenario.capacity_bound_per_min("deep-research")


def test_scenarios_share_one_resource_set_and_identical_tool_templates() -> None:
    scenarios = [load_scenario(path) for path in SCENARIO_FILES if path.stem not in SMALL_EXAMPLES]
    first = scenarios[0]
    for scenario in scenarios[1:]:
        assert scenario.resources == first.resources, scenario.name
    templates: dict[str, tuple[str, object]] = {}
    for scenario in scenarios:
        for name, template in scenario.tools.items():
            owner, seen = templates.setdefault(name, (scenario.name, template))
            assert template == seen, f"template {name!r} differs between {owner} and {scenario.name}"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_a_short_replication_of_every_scenario_is_stable_with_plausible_latencies(path: Path) -> None:
    scenario = dataclasses.replace(load_scenario(path), horizon_s=600.0, warmup_s=60.0)
    summary = run_replication(scenario, seed=scenario.seed)
    assert summary.stable
    assert summary.overall.unfinished == 0
    for name in scenario.request_types:
        figures = summary.types[name]
        assert figures.completed > 0, name
        assert 0.5 < figures.mean_s < 30.0, name


def test_rag_with_failures_fails_times_out_falls_back_and_retries_and_accounts_for_every_request() -> None:
    scenario = load("rag_with_failures")
    summary = run_replication(scenario, seed=scenario.seed)
    assert summary.stable and summary.in_flight == 0
    for name, figures in [*summary.types.items(), ("(all)", summary.overall)]:
        finished = figures.completed + figures.failed + figures.timed_out
        assert finished + figures.unfinished == figures.arrived, name
    chat, summarise = summary.types["chat"], summary.types["summarise"]

    web = summary.nodes["chat"]["web"]
    assert web.failed > 0 and web.timed_out > 0
    # No retries: every failed or cancelled search fell back to the cache, and the cache lookup never fails.
    assert web.fallbacks == web.failed + web.timed_out
    # Each request either skipped the branch (prob 0.4: about 60% do) or ran the search, plus its fallback runs.
    assert web.attempts - web.fallbacks + web.branch_skipped == chat.arrived
    assert abs(web.branch_skipped / chat.arrived - 0.6) < 0.05

    # Retries with backoff absorb every LLM error of chat: each failure cost one more attempt, no request.
    answer = summary.nodes["chat"]["answer"]
    assert answer.failed > 0
    assert answer.attempts == chat.arrived + answer.failed + answer.timed_out
    assert chat.success_ratio == 1.0

    # A document too long for the summary's timeout fails its request; the variants' nodes are keyed VARIANT/NODE.
    assert {"direct/summary", "with_related/related", "with_related/summary"} <= set(summary.nodes["summarise"])
    timeouts = sum(summary.nodes["summarise"][f"{v}/summary"].timed_out for v in ("direct", "with_related"))
    assert timeouts > 0 and summarise.timed_out > 0
    assert summarise.success_ratio is not None and summarise.success_ratio < 1.0

    wasted = {name: getattr(res, "wasted_work_per_s", 0.0) for name, res in summary.resources.items()}
    assert wasted["network"] > 0  # cancelled web searches
    assert wasted["npu"] > 0  # failed and timed-out LLM calls
