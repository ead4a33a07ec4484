"""Mutated lifecycle input folders: unreadable files, empty tables, bad cells, ``meta.yaml`` and Parquet variants, run
by ``lifecycle run --out`` and ``lifecycle submit``. The base is a synthetic fleet of 12 airframes over 40 days."""

from __future__ import annotations

import gzip
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.fuzz.harness import Case
from tests.fuzz.templates import (
    TABLES,
    Templates,
    alias_bomb,
    previous_output,
    special_file_case,
    write_previous,
    write_yaml,
)

BAD_CELLS = [
    "", "abc", "-1", "0", "4294967296", "99999999999999999999", "1e30", "nan", "true", "\x00", "9999-12-31",
    "1900-01-01", "2025-02-30", "0x10", " 5 ", "1.5", "\u00e9\u00e8", "-9223372036854775809",
]  # fmt: skip


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
        case = special_file_case(rng, "inputs", argv, f"in/{file}", _copy_inputs(templates.inputs_csv),
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
            write_yaml(meta, data)
        elif kind == "date":
            data["version_date"] = value
            write_yaml(meta, data)
        elif kind == "duplicate":
            meta.write_text(meta.read_text() + "days: 10\n")
        elif kind == "laughs":
            meta.write_text(alias_bomb(9) + meta.read_text())
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
