"""Generators of fuzz cases, one per class of bad input named in issue 12, each driven by a seeded ``random.Random``.

Every generator yields :class:`~tests.fuzz.harness.Case` objects. A case is ``expect="error"`` when its mutation makes
the input bad whatever else is in it (a NaN where a number belongs, a FIFO where a table belongs), and
``expect="either"`` when the mutated input may still be valid (a rate of 1e308 may be refused or run to a guard).
The base inputs are small so that a valid case runs in well under a second: the DES scenarios are the example
scenarios cut to 20 simulated seconds, the lifecycle inputs a synthetic fleet of 12 airframes over 40 days.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import math
import os
import random
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.fuzz.harness import PREVIOUS, Case

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("web_search_load_test", "mixed_workload", "deep_research_sla")
TABLES = ("mp1", "mp3", "mp4", "mp5")

NOT_NUMBERS: list[Any] = [math.inf, -math.inf, math.nan, 10**400, -(10**400), "x", True, None, [], {"a": 1}]
"""Values that are bad wherever a number belongs."""
ODD_NUMBERS: list[Any] = [0, -1, -0.0, 5e-324, 1e-310, 1e308, 1.7e308, 2**63, 2**31, 1e-9, 0.5]
"""Values that are bad in some places and fine in others."""
BAD_CELLS = [
    "", "abc", "-1", "0", "4294967296", "99999999999999999999", "1e30", "nan", "true", "\x00", "9999-12-31",
    "1900-01-01", "2025-02-30", "0x10", " 5 ", "1.5", "\u00e9\u00e8", "-9223372036854775809",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------------ templates


def previous_output(argv: list[str]) -> str:
    """A file an earlier run of ``argv``'s command leaves in its ``--out`` (where a case puts :data:`PREVIOUS`)."""
    command = tuple(argv[:2])
    return {
        ("lifecycle", "run"): "mp2/part-0.parquet",
        ("lifecycle", "synth"): "meta.yaml",
        ("des", "sla"): "probes.json",
        ("des", "sweep"): "sweep.json",
    }.get(command, "mp2/part-0.parquet")


def write_previous(folder: Path, out: str, argv: list[str]) -> str:
    """Put the stand-in of an earlier output under ``folder/out``; return its path relative to ``out``."""
    relative = previous_output(argv)
    marker = folder / out / relative
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(PREVIOUS)
    return relative


class Templates:
    """Base inputs made once per run, copied into each case's folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.scenarios: dict[str, dict[str, Any]] = {}
        for name in SCENARIOS:
            data = yaml.safe_load((REPO / "config" / "scenarios" / f"{name}.yaml").read_text())
            data.update(horizon_s=20, warmup_s=0, replications=1)
            data.pop("sla", None)
            self.scenarios[name] = data
        self.inputs_csv = self._inputs("csv", aircraft=12, days=40)
        self.inputs_parquet = self._inputs("parquet", aircraft=12, days=40)
        self._big: Path | None = None

    def _inputs(self, fmt: str, *, aircraft: int, days: int) -> Path:
        from simfleet.worker.lifecycle.inputs import write_inputs
        from simfleet.worker.lifecycle.synth import synthesize

        path = self.root / f"inputs-{fmt}-{aircraft}x{days}"
        if not path.exists():
            write_inputs(synthesize(aircraft, days, 7, dt.date(2025, 1, 1)), path, fmt)  # type: ignore[arg-type]
        return path

    @property
    def big_inputs(self) -> Path:
        """A fleet that takes seconds to run (for interrupted runs)."""
        if self._big is None:
            self._big = self._inputs("parquet", aircraft=1000, days=3650)
        return self._big


def _write_yaml(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, (*path, index))
    else:
        yield path, data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _delete(data: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        data = data[key]
    del data[path[-1]]


def _last_key(path: tuple[Any, ...]) -> str:
    named = [k for k in path if isinstance(k, str)]
    return named[-1] if named else ""


# ------------------------------------------------------------------------------------------------------ scenarios


def _scenario_command(rng: random.Random, data: dict[str, Any], file: str = "s.yaml") -> tuple[list[str], str | None]:
    types = list(data.get("request_types", {}) or {"x": 0}) if isinstance(data, dict) else ["x"]
    request_type = str(rng.choice(types)) if types else "x"
    choice = rng.choice(["run", "run", "sla", "sweep"])
    if choice == "run":
        return ["des", "run", file, "--processes", "1", "--replications", "1", "--json"], None
    if choice == "sla":
        return ["des", "sla", file, "--request-type", request_type, "--threshold", "5", "--replications", "1",
                "--rel-tol", "0.3", "--processes", "1", "--json", "--out", "out"], "out"  # fmt: skip
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
            _write_yaml(folder / "s.yaml", data)
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
    numeric = [(p, v) for p, v in _leaves(data) if isinstance(v, int | float) and not isinstance(v, bool)]
    numeric = [(p, v) for p, v in numeric if _last_key(p) not in ("description", "name")]
    path, _ = rng.choice(numeric)
    if rng.random() < 0.5:
        value = rng.choice(NOT_NUMBERS)
        expect = "error"
    else:
        value = rng.choice(ODD_NUMBERS)
        expect = "either"
    _set(data, path, value)
    key = _last_key(path)
    return _scenario_case(rng, f"{'.'.join(map(str, path))} = {value!r}", data, expect=expect, names=("s.yaml", key))


def _scenario_structure(rng: random.Random, data: dict[str, Any]) -> Case | None:
    paths = [p for p, _ in _leaves(data)]
    path = rng.choice(paths)
    kind = rng.choice(["delete", "unknown", "retype", "retype-parent"])
    if kind == "delete":
        _delete(data, path)
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
    _set(data, target_path, value)
    return _scenario_case(rng, f"{'.'.join(map(str, target_path))} = {value!r}", data, expect="either")


def _scenario_meaning(rng: random.Random, data: dict[str, Any]) -> Case | None:
    rt_name = rng.choice(list(data["request_types"]))
    nodes = data["request_types"][rt_name]["nodes"]
    node_names = list(nodes)
    kind = rng.choice(["repeat-after", "unknown-after", "cycle", "unknown-tool", "no-nodes", "horizon", "rate",
                       "self-after", "no-types", "zero-work"])  # fmt: skip
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
        data["request_types"][rt_name]["nodes"] = {}
    elif kind == "no-types":
        data["request_types"] = {}
    elif kind == "horizon":
        data["horizon_s"] = rng.choice([1e308, 1e12, 1e15])
        expect = "error"
    elif kind == "rate":
        data["request_types"][rt_name]["rate_per_min"] = rng.choice([1e308, 1e9, 1e6])
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
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
        body = ("\n".join(lines) + "\n").encode() + text
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
        return _special_file_case(rng, "scenario", ["des", "run", "s.yaml", "--processes", "1", "--json"], "s.yaml")
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


def _special_file_case(
    rng: random.Random, family: str, argv: list[str], target: str,
    make_rest: Callable[[Path], None] | None = None, names: tuple[str, ...] = (),
) -> Case:  # fmt: skip
    kind = rng.choice(["directory", "fifo", "symlink-loop", "dev-zero", "missing", "dangling"])

    def setup(folder: Path) -> None:
        if make_rest is not None:
            make_rest(folder)
        path = folder / target
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        if kind == "directory":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "symlink-loop":
            path.symlink_to(path.name)
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
        elif kind == "dangling":
            path.symlink_to("nowhere.bin")

    return Case(family, f"{target} is {kind}", argv=argv, expect="error", setup=setup,
                names=names or (Path(target).name,))  # fmt: skip


# ------------------------------------------------------------------------------------------------ lifecycle inputs


def _copy_inputs(source: Path) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        shutil.copytree(source, folder / "in")

    return setup


def inputs_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Mutated lifecycle input folders: unreadable files, empty tables, cells, meta.yaml, horizons."""
    makers = [_inputs_file, _inputs_cell, _inputs_cell, _inputs_meta, _inputs_parquet]
    for _ in range(count):
        yield rng.choice(makers)(templates, rng)


def _lifecycle_command(rng: random.Random) -> tuple[list[str], str | None]:
    choice = rng.random()
    if choice < 0.7:
        previous = ["--json"] if rng.random() < 0.5 else []
        return ["lifecycle", "run", "--inputs", "in", "--out", "out", "--chunk-days", "15", *previous], "out"
    if choice < 0.85:
        return ["lifecycle", "run", "--inputs", "in", "--log", "aggregates", "--json"], None
    return ["lifecycle", "submit", "--fleet", "--inputs", "in", "--no-wait"], None


def _inputs_case(rng: random.Random, name: str, source: Path, mutate: Callable[[Path], None], *, expect: str,
                 names: tuple[str, ...]) -> Case:  # fmt: skip
    argv, out = _lifecycle_command(rng)
    previous = out is not None and rng.random() < 0.3
    if argv[1] == "submit" and expect == "either":
        expect = "error"  # a valid one reaches the (unreachable) fleet: a clean error too
        names = ()

    def setup(folder: Path) -> None:
        _copy_inputs(source)(folder)
        mutate(folder / "in")
        if previous:
            write_previous(folder, "out", argv)

    return Case("inputs", name, argv=argv, expect=expect, setup=setup, out=out,  # type: ignore[arg-type]
                names=names if expect == "error" else (),
                previous=previous_output(argv) if previous else None)  # fmt: skip


def _inputs_file(templates: Templates, rng: random.Random) -> Case:
    table = rng.choice(TABLES)
    file = f"{table}.csv"
    kind = rng.choice(["binary", "utf16", "gzip", "empty", "header-only", "duplicate-column", "both-formats",
                       "missing", "nul-header", "special", "bom-latin1", "unreadable"])  # fmt: skip
    if kind == "special":
        argv, out = _lifecycle_command(rng)
        case = _special_file_case(rng, "inputs", argv, f"in/{file}", _copy_inputs(templates.inputs_csv),
                                  names=(table,))  # fmt: skip
        case.out = out
        return case

    def mutate(folder: Path) -> None:
        path = folder / file
        text = path.read_bytes()
        if kind == "binary":
            path.write_bytes(bytes(rng.getrandbits(8) for _ in range(4096)))
        elif kind == "utf16":
            path.write_bytes(text.decode().encode("utf-16"))
        elif kind == "gzip":
            path.write_bytes(gzip.compress(text))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "header-only":
            path.write_bytes(text.splitlines(keepends=True)[0])
        elif kind == "duplicate-column":
            lines = text.decode().splitlines()
            first = lines[0].split(",")[0]
            rows = [lines[0] + f",{first}"] + [line + "," + line.split(",")[0] for line in lines[1:]]
            path.write_text("\n".join(rows) + "\n")
        elif kind == "both-formats":
            shutil.copy(templates.inputs_parquet / f"{table}.parquet", folder / f"{table}.parquet")
        elif kind == "missing":
            path.unlink()
        elif kind == "nul-header":
            path.write_bytes(text.replace(b",", b"\x00,", 1))
        elif kind == "bom-latin1":
            path.write_bytes(text.replace(b"\n", "\n\u00e9".encode("latin-1"), 2))
        else:
            path.chmod(0)

    expect = "either" if kind in ("bom-latin1", "unreadable") else "error"
    return _inputs_case(rng, f"{file}: {kind}", templates.inputs_csv, mutate, expect=expect, names=(table,))


def _inputs_cell(templates: Templates, rng: random.Random) -> Case:
    table = rng.choice(TABLES)
    value = rng.choice(BAD_CELLS)
    path = templates.inputs_csv / f"{table}.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = rng.randrange(1, len(lines))
    column = rng.randrange(len(header))

    def mutate(folder: Path) -> None:
        rows = [line.split(",") for line in lines]
        rows[row][column] = f'"{value}"' if value in ("", " 5 ") else value
        (folder / f"{table}.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")

    return _inputs_case(rng, f"{table}.csv row {row} {header[column]} = {value!r}", templates.inputs_csv, mutate,
                        expect="either", names=(table,))  # fmt: skip


def _inputs_meta(templates: Templates, rng: random.Random) -> Case:
    kind = rng.choice(["days", "days", "date", "duplicate", "laughs", "binary", "missing", "list", "extra"])
    value: Any = None
    expect = "error"
    names: tuple[str, ...] = ("meta.yaml",)
    if kind == "days":
        value = rng.choice([0, -1, 65_536, 10**6, 10**30, 1e308, "x", None, True, 1.5, 30, 40])
        expect = "either" if value in (30, 40) and value is not True else "error"
        names = ("meta.yaml", "days")
    elif kind == "date":
        value = rng.choice(["2200-01-01", "1900-01-01", "x", 20250101, "2025-02-30", "2149-06-01"])
        names = ("meta.yaml",)

    def mutate(folder: Path) -> None:
        meta = folder / "meta.yaml"
        data = yaml.safe_load(meta.read_text())
        if kind == "days":
            data["days"] = value
            _write_yaml(meta, data)
        elif kind == "date":
            data["version_date"] = value
            _write_yaml(meta, data)
        elif kind == "duplicate":
            meta.write_text(meta.read_text() + "days: 10\n")
        elif kind == "laughs":
            lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
            lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
            meta.write_text("\n".join(lines) + "\n" + meta.read_text())
        elif kind == "binary":
            meta.write_bytes(bytes(rng.getrandbits(8) for _ in range(512)))
        elif kind == "missing":
            meta.unlink()
        elif kind == "list":
            meta.write_text("- 1\n")
        else:
            meta.write_text(meta.read_text() + "colour: blue\n")

    return _inputs_case(rng, f"meta.yaml: {kind} {value!r}", templates.inputs_csv, mutate, expect=expect,
                        names=names)  # fmt: skip


def _inputs_parquet(templates: Templates, rng: random.Random) -> Case:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = rng.choice(TABLES)
    kind = rng.choice(["zero-rows", "bool-column", "duplicate-column", "truncated", "string-ints", "float-ints"])

    def mutate(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        arrow = pq.read_table(path)
        if kind == "zero-rows":
            pq.write_table(arrow.slice(0, 0), path)
        elif kind == "bool-column":
            name = arrow.column_names[-1]
            column = pa.array([i % 2 == 0 for i in range(arrow.num_rows)])
            pq.write_table(arrow.set_column(arrow.num_columns - 1, name, column), path)
        elif kind == "duplicate-column":
            pq.write_table(arrow.append_column(arrow.column_names[0], arrow.column(0)), path)
        elif kind == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif kind == "string-ints":
            name = arrow.column_names[-1]
            column = pa.array([str(v) for v in arrow.column(name).to_pylist()])
            pq.write_table(arrow.set_column(arrow.num_columns - 1, name, column), path)
        else:
            name = arrow.column_names[-1]
            if pa.types.is_integer(arrow.schema.field(name).type):
                column = pa.array([float(v) + 0.5 for v in arrow.column(name).to_pylist()])
                pq.write_table(arrow.set_column(arrow.num_columns - 1, name, column), path)

    expect = "either" if kind in ("string-ints", "float-ints") else "error"
    return _inputs_case(rng, f"{table}.parquet: {kind}", templates.inputs_parquet, mutate, expect=expect,
                        names=(table,))  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- flags

_S = "s.yaml"
FLAG_MISUSES: list[tuple[list[str], str]] = [
    (["des", "run", _S, "--replications", "0"], "--replications"),
    (["des", "run", _S, "--replications", "-1"], "--replications"),
    (["des", "run", _S, "--replications", "x"], "--replications"),
    (["des", "run", _S, "--seed", "-1"], "--seed"),
    (["des", "run", _S, "--seed", str(2**63)], "--seed"),
    (["des", "run", _S, "--seed", str(10**30)], "--seed"),
    (["des", "run", _S, "--processes", "0"], "--processes"),
    (["des", "run", _S, "--processes", "-3"], "--processes"),
    (["des", "run", _S, "--fleet", "--timeout", "0"], "--timeout"),
    (["des", "run", _S, "--fleet", "--timeout", "nan"], "--timeout"),
    (["des", "run", _S, "--priority", "urgent"], "--priority"),
    (["des", "run", _S, "--trace", "/proc/no/trace.txt"], "--trace"),
    (["des", "run", _S, "--trace", "."], "--trace"),
    (["des", "run", "nowhere.yaml"], "nowhere.yaml"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "-1"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "nan"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "inf"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "0"], "--threshold"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--rel-tol", "0"], "--rel-tol"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--rel-tol", "-1"], "--rel-tol"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--rel-tol", "nan"], "--rel-tol"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--replications", "0"], "--replications"),
    (["des", "sla", _S, "--request-type", "nope", "--threshold", "1"], "nope"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--metric", "p100"], "--metric"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--out", "/proc/x/y"], "--out"),
    (["des", "sla", _S, "--request-type", "web-search", "--threshold", "1", "--out", "afile"], "--out"),
    (["des", "sla", _S], "--threshold"),
    (["des", "sweep", _S, "--rates", "0"], "--rates"),
    (["des", "sweep", _S, "--rates", "-5"], "--rates"),
    (["des", "sweep", _S, "--rates", "nan"], "--rates"),
    (["des", "sweep", _S, "--rates", "inf"], "--rates"),
    (["des", "sweep", _S, "--rates", "1", "--replications", "-1"], "--replications"),
    (["des", "sweep", _S, "--rates", "1", "--request-type", "nope"], "nope"),
    (["des", "sweep", _S, "--rates", "1", "--threshold", "-1"], "--threshold"),
    (["des", "sweep", _S, "--rates", "1", "--out", "afile"], "--out"),
    (["des", "sweep", _S, "--rates", "1", "--out", "/proc/x"], "--out"),
    (["des", "sweep", _S], "--rates"),
    (["des", "validate", "--scale", "0"], "--scale"),
    (["des", "validate", "--scale", "-1"], "--scale"),
    (["des", "validate", "--scale", "nan"], "--scale"),
    (["des", "frobnicate"], "frobnicate"),
    (["lifecycle", "run", "--inputs", "in", "--days", "0"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--days", "-1"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--days", "99999999"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--days", "1e3"], "--days"),
    (["lifecycle", "run", "--inputs", "in", "--chunk-days", "0"], "--chunk-days"),
    (["lifecycle", "run", "--inputs", "in", "--chunk-days", "-7"], "--chunk-days"),
    (["lifecycle", "run", "--inputs", "in", "--backend", "nope"], "nope"),
    (["lifecycle", "run", "--inputs", "in", "--log", "some"], "--log"),
    (["lifecycle", "run", "--inputs", "in", "--out", "/proc/x"], "--out"),
    (["lifecycle", "run", "--inputs", "in", "--out", "afile"], "--out"),
    (["lifecycle", "run", "--inputs", "in", "--out", "/dev/null/x"], "--out"),
    (["lifecycle", "run", "--inputs", "nowhere"], "nowhere"),
    (["lifecycle", "run", "--inputs", "afile"], "afile"),
    (["lifecycle", "run"], "--inputs"),
    (["lifecycle", "synth", "--aircraft", "0", "--out", "o"], "--aircraft"),
    (["lifecycle", "synth", "--aircraft", "-5", "--out", "o"], "--aircraft"),
    (["lifecycle", "synth", "--days", "0", "--out", "o"], "--days"),
    (["lifecycle", "synth", "--days", "99999999", "--out", "o"], "--days"),
    (["lifecycle", "synth", "--seed", "-1", "--out", "o"], "--seed"),
    (["lifecycle", "synth", "--version-date", "2025-13-01", "--out", "o"], "--version-date"),
    (["lifecycle", "synth", "--version-date", "2200-01-01", "--out", "o"], "--version-date"),
    (["lifecycle", "synth", "--out", "afile"], "--out"),
    (["lifecycle", "synth", "--out", "/proc/x"], "--out"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", "../../x"], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", ""], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", "a/b"], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--job-id", "x" * 65], "--job-id"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--days", "0"], "--days"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--chunk-days", "0"], "--chunk-days"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--timeout", "-1"], "--timeout"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--backend", "nope"], "--backend"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--inputs-version", "x"], "--inputs"),
    (["lifecycle", "submit", "--fleet", "--inputs-version", "2025-01-01/x"], "--inputs-version"),
    (["lifecycle", "submit", "--fleet", "--inputs-version", "2025-01-01/-1"], "--inputs-version"),
    (["lifecycle", "submit", "--fleet", "--inputs", "in", "--out", "afile"], "--out"),
    (["lifecycle", "submit", "--inputs", "in"], "--fleet"),
    (["job", "status", "../../x"], "../../x"),
    (["job", "cancel", "a b"], "a b"),
    (["job", "delete", ""], "id"),
    (["job", "export", "../x", "--out", "o"], "../x"),
    (["study", "status", "../../x"], "../../x"),
    (["study", "cancel", "x" * 100], "id"),
    (["checkpoint", "show", "../x"], "../x"),
    (["db", "import-inputs", "in", "--version-id", "-1"], "--version-id"),
    (["db", "import-inputs", "in", "--version-id", str(2**40)], "--version-id"),
    (["db", "import-inputs", "in", "--version-id", "x"], "--version-id"),
    (["db", "import-inputs", "nowhere", "--version-id", "1"], "nowhere"),
    (["des", "run", _S, "--no-such-flag"], "--no-such-flag"),
    ([], "COMMAND"),
]
"""Command-line misuses, each with what its error must name."""


def flag_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Every misuse of :data:`FLAG_MISUSES` once, in the run's order (``count`` caps them)."""
    scenario = templates.scenarios["web_search_load_test"]

    def setup(folder: Path) -> None:
        _write_yaml(folder / _S, scenario)
        shutil.copytree(templates.inputs_csv, folder / "in")
        (folder / "afile").write_text("a file, not a folder\n")

    misuses = list(FLAG_MISUSES)
    rng.shuffle(misuses)
    for argv, named in misuses[:count]:
        out = "out" if "--out" in argv and argv[argv.index("--out") + 1] == "out" else None
        yield Case("flags", " ".join(argv)[:80], argv=argv, setup=setup, names=(named,), out=out)


# ------------------------------------------------------------------------------------------------------------- API


def api_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Bad calls of the Python API: each must be refused before anything is sent."""
    scenario = "s.yaml"
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("run_lifecycle", {"inputs": "in", "job_id": "../../x"}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "job_id": ""}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "job_id": "a/b"}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "job_id": 5}, "job_id"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": 0}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": -1}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": 1.5}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": "7"}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "chunk_days": True}, "chunk_days"),
        ("run_lifecycle", {"inputs": "in", "days": 0}, "days"),
        ("run_lifecycle", {"inputs": "in", "days": 10**9}, "days"),
        ("run_lifecycle", {"inputs": "in", "days": "10"}, "days"),
        ("run_lifecycle", {"inputs": "in", "days": math.nan}, "days"),
        ("run_lifecycle", {"inputs": "in", "backend": "nope"}, "backend"),
        ("run_lifecycle", {"inputs": "in", "backend": 3}, "backend"),
        ("run_lifecycle", {"inputs": "in", "log": "some"}, "log"),
        ("run_lifecycle", {"inputs": "in", "priority": "urgent"}, "priority"),
        ("run_lifecycle", {"inputs": "in", "via": "carrier-pigeon"}, "via"),
        ("run_lifecycle", {"inputs": "in", "sink": "s3"}, "sink"),
        ("run_lifecycle", {"inputs": "nowhere"}, "nowhere"),
        ("run_lifecycle", {"inputs": 42}, "inputs"),
        ("run_des", {"scenario": scenario, "replications": 0}, "replications"),
        ("run_des", {"scenario": scenario, "replications": -3}, "replications"),
        ("run_des", {"scenario": scenario, "replications": 2.5}, "replications"),
        ("run_des", {"scenario": scenario, "seed": -1}, "seed"),
        ("run_des", {"scenario": scenario, "seed": 2**64}, "seed"),
        ("run_des", {"scenario": scenario, "seed": "1"}, "seed"),
        ("run_des", {"scenario": scenario, "priority": "urgent"}, "priority"),
        ("run_des", {"scenario": "nowhere.yaml"}, "nowhere.yaml"),
        ("run_des", {"scenario": 42}, "scenario"),
        ("run_des", {"scenario": {"name": "x"}}, "horizon_s"),
        ("sla_search", {"scenario": scenario, "request_type": "nope", "metric": "p95", "threshold_s": 1.0}, "nope"),
        ("sla_search", {"scenario": scenario, "request_type": "web-search", "metric": "p95", "threshold_s": -1.0},
         "threshold"),
        ("sla_search", {"scenario": scenario, "request_type": "web-search", "metric": "p101", "threshold_s": 1.0},
         "metric"),
        ("sla_search", {"scenario": "nowhere.yaml", "request_type": "web-search", "metric": "p95",
                        "threshold_s": 1.0}, "nowhere.yaml"),
        ("job", {"job_id": "../../x"}, "job_id"),
        ("job", {"job_id": None}, "job_id"),
        ("study", {"study_id": "../x"}, "study_id"),
    ]  # fmt: skip
    scenario_data = templates.scenarios["web_search_load_test"]

    def setup(folder: Path) -> None:
        _write_yaml(folder / scenario, scenario_data)
        shutil.copytree(templates.inputs_csv, folder / "in")

    rng.shuffle(calls)
    for function, kwargs, named in calls[:count]:
        yield Case("api", f"{function}({kwargs})"[:90], call=(function, kwargs), setup=setup, names=(named,))


# ------------------------------------------------------------------------------------------------------ interrupts


def interrupt_cases(templates: Templates, rng: random.Random, count: int) -> Iterator[Case]:
    """Runs stopped by SIGINT or SIGTERM while they write ``--out``: the previous output or nothing is left."""
    scenario = copy.deepcopy(templates.scenarios["mixed_workload"])
    scenario["horizon_s"] = 7200
    for _ in range(count):
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        after = rng.uniform(0.2, 1.5)
        previous = rng.random() < 0.5
        kind = rng.choice(["lifecycle", "sweep", "sla", "synth"])
        big = templates.big_inputs if kind == "lifecycle" else None

        argv = {
            "lifecycle": ["lifecycle", "run", "--inputs", "in", "--out", "out", "--chunk-days", "30"],
            "sweep": ["des", "sweep", _S, "--rates", "30", "60", "90", "--replications", "2", "--processes", "1",
                      "--out", "out"],
            "sla": ["des", "sla", _S, "--request-type", "web-search", "--threshold", "20", "--replications", "1",
                    "--processes", "1", "--out", "out"],
            "synth": ["lifecycle", "synth", "--aircraft", "2000", "--days", "3650", "--out", "out"],
        }[kind]  # fmt: skip

        def setup(folder: Path, big: Path | None = big, previous: bool = previous, argv: list[str] = argv) -> None:
            _write_yaml(folder / _S, scenario)
            if big is not None:
                (folder / "in").symlink_to(big)
            if previous:
                write_previous(folder, "out", argv)

        name = f"{kind} stopped by {signal.Signals(sig).name} after {after:.1f} s"
        yield Case("interrupt", name, argv=argv, expect="either", setup=setup, out="out", interrupt=(sig, after),
                   previous=previous_output(argv) if previous else None)  # fmt: skip


GENERATORS: dict[str, Callable[[Templates, random.Random, int], Iterator[Case]]] = {
    "scenario": scenario_cases,
    "inputs": inputs_cases,
    "flags": flag_cases,
    "api": api_cases,
    "interrupt": interrupt_cases,
}

SHARES = {"scenario": 0.45, "inputs": 0.35, "flags": 0.1, "api": 0.05, "interrupt": 0.05}
"""How a run's cases are spread over the families (flags and API calls are fixed lists, repeated to fill)."""


def make_cases(templates: Templates, total: int, seed: int) -> list[Case]:
    """``total`` cases over every family, the same for the same ``seed``."""
    cases: list[Case] = []
    for family, share in SHARES.items():
        rng = random.Random(f"{seed}-{family}")
        wanted = max(1, round(total * share))
        made: list[Case] = []
        while len(made) < wanted:
            batch = list(GENERATORS[family](templates, rng, wanted - len(made)))
            if not batch:
                break
            made.extend(batch)
        cases.extend(made[:wanted])
    return cases
