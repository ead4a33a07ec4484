"""Mutated DES scenarios: numbers, structure, meaning, YAML text and sizes, run by ``des run``, ``des sla --out`` and
``des sweep --out``. The base scenarios are the examples cut to 20 simulated seconds."""

from __future__ import annotations

import copy
import gzip
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.fuzz.harness import Case
from tests.fuzz.templates import (
    SCENARIOS,
    Templates,
    alias_bomb,
    delete_at,
    last_key,
    leaves,
    previous_output,
    set_at,
    special_file_case,
    write_previous,
    write_yaml,
)

NOT_NUMBERS: list[Any] = [math.inf, -math.inf, math.nan, 10**400, -(10**400), "x", True, None, [], {"a": 1}]
"""Values that are bad wherever a number belongs."""
ODD_NUMBERS: list[Any] = [0, -1, -0.0, 5e-324, 1e-310, 1e308, 1.7e308, 2**63, 2**31, 1e-9, 0.5]
"""Values that are bad in some places and fine in others."""

# ------------------------------------------------------------------------------------------------------ scenarios


def _scenario_command(rng: random.Random, data: dict[str, Any], file: str = "s.yaml") -> tuple[list[str], str | None]:
    types = list(data.get("request_types", {}) or {"x": 0}) if isinstance(data, dict) else ["x"]
    request_type = str(rng.choice(types)) if types else "x"
    choice = rng.choice(["run", "run", "sla", "sweep"])
    if choice == "run":
        return ["des", "run", file, "--processes", "1", "--replications", "1", "--json"], None
    if choice == "sla":
        return ["des", "sla", file, "--request-type", request_type, "--threshold", "5", "--replications", "2",
                "--max-replications", "2", "--rel-tol", "0.3", "--processes", "1", "--json", "--out",
                "out"], "out"  # fmt: skip
    return ["des", "sweep", file, "--rates", "6", "30", "--replications", "1", "--processes", "1", "--json",
            "--out", "out"], "out"  # fmt: skip


def scenario_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Mutated DES scenarios: numbers, structure, meaning, YAML text, sizes."""
    makers: list[Callable[[random.Random, dict[str, Any]], Case | None]] = [
        _scenario_number, _scenario_number, _scenario_number, _scenario_structure, _scenario_meaning,
        _scenario_text, _scenario_size,
    ]  # fmt: skip
    made = 0
    while made < count:
        base = copy.deepcopy(templates.scenarios[rng.choice(SCENARIOS)])
        case = rng.choice(makers)(rng, base)
        if case is not None:
            made += 1
            yield case


def _scenario_case(rng: random.Random, name: str, data: Any, *, expect: str, names: tuple[str, ...] = (),
                   text: bytes | None = None, pad_bytes: int = 0) -> Case:  # fmt: skip
    argv, out = _scenario_command(rng, data if isinstance(data, dict) else {})
    previous = rng.random() < 0.3 and out is not None

    def setup(folder: Path) -> None:
        if text is not None:
            (folder / "s.yaml").write_bytes(text)
        else:
            write_yaml(folder / "s.yaml", data)
        if pad_bytes:
            with (folder / "s.yaml").open("ab") as file:
                file.write(b"# ")
                for _ in range(pad_bytes // 2**20):
                    file.write(b"x" * 2**20)
                file.write(b"\n")
        if previous:
            write_previous(folder, "out", argv)

    return Case("scenario", name, argv=argv, expect=expect, setup=setup, out=out,  # type: ignore[arg-type]
                names=names if expect == "error" else (),
                previous=previous_output(argv) if previous else None)  # fmt: skip


def _scenario_number(rng: random.Random, data: dict[str, Any]) -> Case | None:
    numeric = [(p, v) for p, v in leaves(data) if isinstance(v, int | float) and not isinstance(v, bool)]
    numeric = [(p, v) for p, v in numeric if last_key(p) not in ("description", "name")]
    path, _ = rng.choice(numeric)
    if rng.random() < 0.5:
        value = rng.choice(NOT_NUMBERS)
        expect = "error"
    else:
        value = rng.choice(ODD_NUMBERS)
        expect = "either"
    set_at(data, path, value)
    key = last_key(path)
    return _scenario_case(rng, f"{'.'.join(map(str, path))} = {value!r}", data, expect=expect, names=("s.yaml", key))


def _scenario_structure(rng: random.Random, data: dict[str, Any]) -> Case | None:
    paths = [p for p, _ in leaves(data)]
    path = rng.choice(paths)
    kind = rng.choice(["delete", "unknown", "retype", "retype-parent"])
    if kind == "delete":
        delete_at(data, path)
        return _scenario_case(rng, f"delete {'.'.join(map(str, path))}", data, expect="either")
    if kind == "unknown":
        parent = path[:-1]
        target = data
        for key in parent:
            target = target[key]
        if not isinstance(target, dict):
            return None
        target["colour"] = "blue"
        return _scenario_case(rng, f"unknown key colour under {'.'.join(map(str, parent))}", data, expect="error",
                              names=("s.yaml", "colour"))  # fmt: skip
    target_path = path if kind == "retype" else path[:-1]
    if not target_path:
        return None
    value = rng.choice([["a", "b"], "text", 3, None, {"x": {"y": 1}}])
    set_at(data, target_path, value)
    return _scenario_case(rng, f"{'.'.join(map(str, target_path))} = {value!r}", data, expect="either")


def _scenario_meaning(rng: random.Random, data: dict[str, Any]) -> Case | None:
    rt_name = rng.choice(list(data["request_types"]))
    rtype = data["request_types"][rt_name]
    nodes = rtype["nodes"] if "nodes" in rtype else next(iter(rtype["variants"].values()))["nodes"]
    node_names = list(nodes)
    kind = rng.choice(["repeat-after", "unknown-after", "cycle", "unknown-tool", "no-nodes", "horizon", "rate",
                       "self-after", "no-types", "zero-work", "unknown-fallback", "fallback-cycle", "unknown-per",
                       "bad-prob", "rate-and-process", "nodes-and-variants"])  # fmt: skip
    name = f"{kind} in {rt_name}"
    expect = "error"
    if kind == "repeat-after":
        with_after = [n for n in node_names if nodes[n].get("after")]
        if not with_after:
            return None
        node = nodes[rng.choice(with_after)]
        node["after"] = [*node["after"], node["after"][0]]
    elif kind == "unknown-after":
        nodes[rng.choice(node_names)]["after"] = ["nowhere"]
    elif kind == "self-after":
        chosen = rng.choice(node_names)
        nodes[chosen]["after"] = [chosen]
    elif kind == "cycle":
        if len(node_names) < 2:
            return None
        nodes[node_names[0]]["after"] = [node_names[-1]]
    elif kind == "unknown-tool":
        nodes[rng.choice(node_names)]["tool"] = "no_such_tool"
    elif kind == "no-nodes":
        rtype.pop("variants", None)
        rtype["nodes"] = {}
    elif kind == "unknown-fallback":
        data["tools"][rng.choice(list(data["tools"]))]["on_failure"] = {"fallback": "no_such_tool"}
    elif kind == "fallback-cycle":
        first, second = rng.sample(list(data["tools"]), 2)
        data["tools"][first]["on_failure"] = {"fallback": second}
        data["tools"][second]["on_failure"] = {"fallback": first}
    elif kind == "unknown-per":
        tool = data["tools"][nodes[rng.choice(node_names)]["tool"]]
        resource = next(iter(tool.get("work") or {}), None)
        if resource is None:
            return None
        tool["work"][resource] = {"per": "no_such_attribute", "amount": 1.0}
    elif kind == "bad-prob":
        nodes[rng.choice(node_names)]["prob"] = rng.choice([1.5, -0.5, 2])
    elif kind == "rate-and-process":
        rtype["rate_per_min"] = rtype.get("rate_per_min", 5)
        rtype["arrival"] = {"process": "mmpp", "rates_per_min": [1, 10], "mean_sojourn_s": [5, 5]}
    elif kind == "nodes-and-variants":
        rtype["nodes" if "variants" in rtype else "variants"] = (
            {"v": {"weight": 1, "nodes": dict(nodes)}} if "nodes" in rtype else dict(nodes))
    elif kind == "no-types":
        data["request_types"] = {}
    elif kind == "horizon":
        data["horizon_s"] = rng.choice([1e308, 1e12, 1e15])
        expect = "error"
    elif kind == "rate":
        if "rate_per_min" not in rtype:
            return None
        rtype["rate_per_min"] = rng.choice([1e308, 1e9, 1e6])
        expect = "either"
    else:
        tool = data["tools"][nodes[rng.choice(node_names)]["tool"]]
        tool["work"] = {res: 0 for res in tool.get("work", {})} or {"cpu": 0}
        expect = "either"
    return _scenario_case(rng, name, data, expect=expect, names=("s.yaml",) if expect == "error" else ())


def _scenario_text(rng: random.Random, data: dict[str, Any]) -> Case | None:
    text = yaml.safe_dump(data, sort_keys=False).encode()
    kind = rng.choice(["laughs", "deep", "binary", "utf16", "empty", "list", "duplicate-key", "syntax", "nul",
                       "latin1", "gzip", "tabs"])  # fmt: skip
    if kind == "laughs":
        body = alias_bomb(10).encode() + text
    elif kind == "deep":
        depth = rng.choice([200, 2000, 50000])
        body = text + b"description: " + b"[" * depth + b"]" * depth + b"\n"
    elif kind == "binary":
        body = bytes(rng.getrandbits(8) for _ in range(rng.choice([16, 2048])))
    elif kind == "utf16":
        body = text.decode().encode("utf-16")
    elif kind == "empty":
        body = rng.choice([b"", b"\n", b"# nothing\n", b"~\n"])
    elif kind == "list":
        body = b"- 1\n- 2\n"
    elif kind == "duplicate-key":
        body = text + b"horizon_s: 30\n"
    elif kind == "syntax":
        body = text[: len(text) // 2] + b"\n  - : : [\n"
    elif kind == "nul":
        body = text.replace(b"name: ", b"name: \x00", 1)
    elif kind == "latin1":
        body = text.replace(b"description: ", "description: caf\u00e9 ".encode("latin-1"), 1)
    elif kind == "gzip":
        body = gzip.compress(text)
    else:
        body = text.replace(b"  ", b"\t", 3)
    names = ("s.yaml",)
    if kind == "latin1":
        return _scenario_case(rng, f"text: {kind}", data, expect="either", text=body)
    return _scenario_case(rng, f"text: {kind}", data, expect="error", names=names, text=body)


def _scenario_size(rng: random.Random, data: dict[str, Any]) -> Case | None:
    kind = rng.choice(["big-file", "long-chain", "wide-dag", "empirical", "many-types", "special-file"])
    if kind == "special-file":
        return special_file_case(rng, "scenario", ["des", "run", "s.yaml", "--processes", "1", "--json"], "s.yaml")
    if kind == "big-file":
        return _scenario_case(rng, "text: 64 MiB file", data, expect="error", names=("s.yaml",), pad_bytes=64 * 2**20)
    rt = data["request_types"][next(iter(data["request_types"]))]
    tool = next(iter(data["tools"]))
    if kind == "long-chain":
        size = rng.choice([500, 5000, 100_000])
        rt["nodes"] = {f"n{i}": {"tool": tool, **({"after": [f"n{i - 1}"]} if i else {})} for i in range(size)}
    elif kind == "wide-dag":
        size = rng.choice([500, 5000, 100_000])
        rt["nodes"] = {f"n{i}": {"tool": tool} for i in range(size)}
    elif kind == "empirical":
        size = rng.choice([1000, 100_000, 2_000_000])
        data["tools"][tool]["work"] = {"cpu": {"dist": "empirical", "values": [0.01] * size}}
    else:
        size = rng.choice([200, 5000])
        first = data["request_types"][next(iter(data["request_types"]))]
        data["request_types"] = {f"t{i}": {**copy.deepcopy(first), "rate_per_min": 0.01} for i in range(size)}
    return _scenario_case(rng, f"{kind} of {size}", data, expect="either")
