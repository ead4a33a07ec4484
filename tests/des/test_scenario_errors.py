"""A bad scenario file fails at load time with an error naming the file and the dotted key path of the problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from simfleet.shared.errors import ConfigError, ScenarioError
from simfleet.worker.des.scenario import load_scenario

Mutation = Callable[[dict[str, Any]], None]

VALID: dict[str, Any] = {
    "name": "tiny",
    "horizon_s": 100,
    "warmup_s": 10,
    "resources": {"cpu": {"kind": "rate", "capacity": 2}, "memory": {"kind": "space", "capacity": 4}},
    "tools": {"work": {"work": {"cpu": 1.0}, "space": {"memory": 1}}},
    "request_types": {
        "rt": {"rate_per_min": 10, "nodes": {"a": {"tool": "work"}, "b": {"tool": "work", "after": ["a"]}}},
    },
    "sla": {"request_type": "rt", "metric": "p95", "threshold_s": 5},
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def mutated(mutation: Mutation) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    mutation(data)
    return data


def expect_error(path: Path, key: str | None, reason: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    error = caught.value
    assert error.source == str(path)
    assert error.key == key
    assert reason in error.reason
    where = f"{path}: {key}: " if key else f"{path}: "
    assert str(error) == where + error.reason
    return error


def node(data: dict[str, Any], name: str) -> dict[str, Any]:
    nodes: dict[str, dict[str, Any]] = data["request_types"]["rt"]["nodes"]
    return nodes.setdefault(name, {"tool": "work"})


def work(data: dict[str, Any]) -> dict[str, Any]:
    amounts: dict[str, Any] = data["tools"]["work"]["work"]
    return amounts


def test_the_valid_base_scenario_loads(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, VALID)).name == "tiny"


def test_scenario_error_is_a_config_error() -> None:
    assert issubclass(ScenarioError, ConfigError)


@pytest.mark.parametrize(
    ("mutation", "key"),
    [
        pytest.param(lambda d: d.update(colour="blue"), "colour", id="top-level"),
        pytest.param(lambda d: d["resources"]["cpu"].update(speed=3), "resources.cpu.speed", id="resource"),
        pytest.param(lambda d: d["tools"]["work"].update(cost=1), "tools.work.cost", id="tool"),
        pytest.param(lambda d: d["request_types"]["rt"].update(urgency=1), "request_types.rt.urgency", id="type"),
        pytest.param(lambda d: node(d, "a").update(retry=2), "request_types.rt.nodes.a.retry", id="node"),
        pytest.param(lambda d: d["sla"].update(budget=1), "sla.budget", id="sla"),
        pytest.param(
            lambda d: work(d).update(cpu={"dist": "exponential", "mean": 1, "cv": 2}),
            "tools.work.work.cpu.cv",
            id="distribution",
        ),
    ],
)
def test_unknown_key_names_its_path(tmp_path: Path, mutation: Mutation, key: str) -> None:
    expect_error(write(tmp_path, mutated(mutation)), key, "unknown key")


RATE = "request_types.rt.rate_per_min"


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        pytest.param(lambda d: d["request_types"]["rt"].update(rate_per_min=-5), "must be > 0", id="negative"),
        pytest.param(lambda d: d["request_types"]["rt"].update(rate_per_min=0), "must be > 0", id="zero"),
        pytest.param(lambda d: d["request_types"]["rt"].pop("rate_per_min"), "is required", id="missing"),
        pytest.param(lambda d: d["request_types"]["rt"].update(rate_per_min="fast"), "finite number", id="text"),
    ],
)
def test_bad_rate_names_the_rate_key(tmp_path: Path, mutation: Mutation, reason: str) -> None:
    expect_error(write(tmp_path, mutated(mutation)), RATE, reason)


@pytest.mark.parametrize(
    ("mutation", "key", "cycle"),
    [
        pytest.param(lambda d: node(d, "a").update(after=["b"]), "request_types.rt.nodes.b.after", "a -> b -> a"),
        pytest.param(lambda d: node(d, "a").update(after=["a"]), "request_types.rt.nodes.a.after", "a -> a"),
        pytest.param(
            lambda d: (node(d, "c").update(after=["b"]), node(d, "a").update(after=["c"])),
            "request_types.rt.nodes.b.after",
            "a -> b -> c -> a",
        ),
    ],
    ids=["two-nodes", "self-loop", "three-nodes"],
)
def test_cycle_in_the_dag_is_named(tmp_path: Path, mutation: Mutation, key: str, cycle: str) -> None:
    expect_error(write(tmp_path, mutated(mutation)), key, f"the DAG has a cycle: {cycle}")


def test_after_naming_an_unknown_node(tmp_path: Path) -> None:
    data = mutated(lambda d: node(d, "b").update(after=["a", "z"]))
    expect_error(write(tmp_path, data), "request_types.rt.nodes.b.after", "unknown node 'z'")


def test_node_naming_an_unknown_tool_template(tmp_path: Path) -> None:
    data = mutated(lambda d: node(d, "a").update(tool="crawl"))
    expect_error(write(tmp_path, data), "request_types.rt.nodes.a.tool", "unknown tool template 'crawl'")


def test_space_demand_above_capacity(tmp_path: Path) -> None:
    data = mutated(lambda d: d["tools"]["work"]["space"].update(memory=4.5))
    expect_error(write(tmp_path, data), "tools.work.space.memory", "exceeds the capacity of 'memory' (4.0)")


def test_space_demand_equal_to_capacity_is_allowed(tmp_path: Path) -> None:
    data = mutated(lambda d: d["tools"]["work"]["space"].update(memory=4))
    assert load_scenario(write(tmp_path, data)).tools["work"].space == {"memory": 4.0}


@pytest.mark.parametrize(
    ("mutation", "key", "reason"),
    [
        pytest.param(lambda d: work(d).update(gpu=1.0), "tools.work.work.gpu", "unknown resource 'gpu'", id="work"),
        pytest.param(
            lambda d: d["tools"]["work"]["space"].update(disk=1), "tools.work.space.disk", "unknown key", id="space"
        ),
        pytest.param(lambda d: work(d).update(memory=1.0), "tools.work.work.memory", "is a space resource", id="kind"),
    ],
)
def test_demand_on_an_undeclared_or_wrong_kind_of_resource(
    tmp_path: Path, mutation: Mutation, key: str, reason: str
) -> None:
    expect_error(write(tmp_path, mutated(mutation)), key, reason)


CPU_WORK = "tools.work.work.cpu"


@pytest.mark.parametrize(
    ("amount", "key", "reason"),
    [
        pytest.param({"dist": "pareto", "mean": 1}, f"{CPU_WORK}.dist", "'dist' must be one of", id="unknown-dist"),
        pytest.param({"mean": 1}, f"{CPU_WORK}.dist", "'dist' must be one of", id="no-dist"),
        pytest.param({"dist": "lognormal", "mean": 1}, f"{CPU_WORK}.cv", "missing ['cv']", id="lognormal-no-cv"),
        pytest.param({"dist": "lognormal", "mean": 1, "cv": -0.5}, f"{CPU_WORK}.cv", "> 0", id="negative-cv"),
        pytest.param({"dist": "uniform", "low": 2, "high": 1}, f"{CPU_WORK}.high", "below low", id="uniform-high-low"),
        pytest.param({"dist": "exponential", "mean": 0}, f"{CPU_WORK}.mean", "> 0", id="exponential-zero-mean"),
        pytest.param({"dist": "empirical", "values": []}, f"{CPU_WORK}.values", "non-empty list", id="empty-values"),
        pytest.param({"dist": "empirical", "values": [1, -2]}, f"{CPU_WORK}.values[1]", ">= 0", id="negative-value"),
        pytest.param(-1.0, CPU_WORK, ">= 0", id="negative-number"),
    ],
)
def test_bad_distribution_names_the_parameter(tmp_path: Path, amount: Any, key: str, reason: str) -> None:
    expect_error(write(tmp_path, mutated(lambda d: work(d).update(cpu=amount))), key, reason)


@pytest.mark.parametrize("warmup_s", [100, 150])
def test_warmup_not_below_horizon(tmp_path: Path, warmup_s: float) -> None:
    data = mutated(lambda d: d.update(warmup_s=warmup_s))
    expect_error(write(tmp_path, data), "warmup_s", "must be below horizon_s (100.0)")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("request_type", "image-search", "unknown request type 'image-search'"),
        ("metric", "p90", "must be one of mean, p50, p95, p99"),
        ("scale", "all", "must be one of type, mix"),
        ("threshold_s", 0, "must be > 0"),
    ],
)
def test_bad_sla_field(tmp_path: Path, field: str, value: Any, reason: str) -> None:
    data = mutated(lambda d: d["sla"].update({field: value}))
    expect_error(write(tmp_path, data), f"sla.{field}", reason)


@pytest.mark.parametrize(
    ("mutation", "key", "reason"),
    [
        pytest.param(lambda d: d.pop("horizon_s"), "horizon_s", "is required", id="missing-horizon"),
        pytest.param(lambda d: d["resources"]["cpu"].update(capacity=0), "resources.cpu.capacity", "> 0", id="cap"),
        pytest.param(
            lambda d: d["resources"]["memory"].update(max_active=2),
            "resources.memory.max_active",
            "only applies to rate resources",
            id="space-max-active",
        ),
        pytest.param(lambda d: d.update(drain="yes"), "drain", "expected true or false", id="drain"),
        pytest.param(lambda d: d.update(request_types={}), "request_types", "non-empty mapping", id="no-types"),
        pytest.param(
            lambda d: d["request_types"]["rt"].update(arrival="bursty"),
            "request_types.rt.arrival",
            "must be one of poisson, deterministic",
            id="arrival",
        ),
    ],
)
def test_other_invalid_values(tmp_path: Path, mutation: Mutation, key: str, reason: str) -> None:
    expect_error(write(tmp_path, mutated(mutation)), key, reason)


def test_text_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("horizon_s: [1, 2\nresources: {\n", encoding="utf-8")
    expect_error(path, None, "not valid YAML")


@pytest.mark.parametrize("text", ["just some words\n", "- a\n- b\n", ""], ids=["scalar", "list", "empty"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(text, encoding="utf-8")
    expect_error(path, None, "expected a mapping")


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nowhere.yaml", None, "scenario file cannot be opened")


def test_file_that_is_not_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01 binary")
    expect_error(path, None, "")


@pytest.mark.parametrize("entry", [["a"], {"a": 1}], ids=["list", "mapping"])
def test_after_entry_that_is_not_a_node_name(tmp_path: Path, entry: Any) -> None:
    data = mutated(lambda d: node(d, "b").update(after=[entry]))
    expect_error(write(tmp_path, data), "request_types.rt.nodes.b.after", "")


def test_duplicate_node_name(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "horizon_s: 100\n"
        "resources: {cpu: {capacity: 2}}\n"
        "tools: {work: {work: {cpu: 1}}}\n"
        "request_types:\n"
        "  rt:\n"
        "    rate_per_min: 10\n"
        "    nodes:\n"
        "      a: {tool: work}\n"
        "      a: {tool: work, after: [b]}\n"
        "      b: {tool: work}\n",
        encoding="utf-8",
    )
    expect_error(path, "request_types.rt.nodes.a", "duplicate")
