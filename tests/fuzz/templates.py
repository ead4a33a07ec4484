"""What every fuzz family starts from: the base inputs (made once per run), the stand-in of an earlier output, and
helpers to reach into nested data and to put a special file (FIFO, device, loop) where a file belongs."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.fuzz.harness import PREVIOUS, Case

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("web_search_load_test", "mixed_workload", "deep_research_sla", "rag_with_failures")
TABLES = ("mp1", "mp3", "mp4", "mp5")

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


def write_yaml(path: Path, data: Any) -> None:
    """``data`` as YAML, through libyaml's emitter (the pure-Python one took 18 s for a 2-million-value list)."""
    path.write_text(yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True))


def leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index))
    else:
        yield path, data


def set_at(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def delete_at(data: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        data = data[key]
    del data[path[-1]]


def last_key(path: tuple[Any, ...]) -> str:
    named = [k for k in path if isinstance(k, str)]
    return named[-1] if named else ""


def alias_bomb(levels: int) -> str:
    """YAML of ``levels`` anchors, each a list of ten aliases of the one before: 10**levels values once expanded."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def special_file_case(
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
