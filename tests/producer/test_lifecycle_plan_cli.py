"""``simfleet lifecycle plan`` and ``simfleet lifecycle run --variants``, as a user runs them.

What is checked: the answer and every probe are printed (text and JSON); a bad flag, a bad variants file or a base
with several variants exits 2 with one line naming the flag or the file and key; an ensemble run prints the
variants side by side, writes the bands CSV and the plot, and MP2 with the variant columns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from simfleet.producer.cli import main
from simfleet.worker.lifecycle.inputs import write_inputs
from simfleet.worker.lifecycle.synth import synthesize

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "variants" / "example.yaml"
BASE = {"replications": 2, "seed": 3, "variants": [{"name": "base", "targets": [{"factor": 0.8}]}],
        "maintenance": {"mi8": {"removal_hazard": 0.003}, "mi17": {"removal_hazard": 0.003}}}  # fmt: skip


@pytest.fixture(scope="module")
def inputs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan") / "in"
    write_inputs(synthesize(50, 400, seed=1), folder, "parquet")
    return folder


def variants_file(tmp_path: Path, data: object, name: str = "v.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses a flag so
        return int(exc.code or 0)


def test_plan_repair_slots_prints_the_answer_and_every_probe(inputs_dir, tmp_path, capsys):
    base = variants_file(tmp_path, BASE)
    argv = ["lifecycle", "plan", "--inputs", str(inputs_dir), "--question", "repair-slots", "--max-shortfall", "30",
            "--variants", str(base)]  # fmt: skip
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "fewest repair slots per type with at most 30 shortfall days in the worst year (mean over 2 replications)" \
        in text  # fmt: skip
    assert "   mi8: 5 slot(s) (29 airframes)" in text
    probes = [line.split() for line in text.splitlines() if line[:1] in "12" and len(line.split()) == 6]
    assert [p[2] for p in probes if p[1] == "mi8"] == ["1", "2", "4", "8", "16", "29", "5", "6", "7"]
    assert {p[5] for p in probes} == {"pass", "fail"}
    assert "2 ensemble run(s)" in text
    assert run([*argv, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] == {"mi8": 5, "mi17": 1}
    assert len(answer["probes"]) == len(probes)
    assert all(set(p) >= {"slots", "value", "passed", "worst_year"} for p in answer["probes"])


def test_plan_says_when_unlimited_slots_do_not_meet_the_limit(inputs_dir, tmp_path, capsys):
    base = variants_file(tmp_path, BASE)
    assert run(["lifecycle", "plan", "--inputs", str(inputs_dir), "--question", "repair-slots", "--max-shortfall",
                "10", "--variants", str(base)]) == 0  # fmt: skip
    assert "mi8: not met even with unlimited slots (29 slots for 29 airframes)" in capsys.readouterr().out


def test_plan_target_factor_prints_a_converged_bracket(inputs_dir, tmp_path, capsys):
    base = variants_file(tmp_path, BASE)
    assert run(["lifecycle", "plan", "--inputs", str(inputs_dir), "--question", "target-factor", "--max-shortfall",
                "30", "--variants", str(base), "--per-round", "4", "--tolerance", "0.05", "--json"]) == 0  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    low, high = answer["bracket"][-1]
    assert answer["converged"] and answer["answer"] == low and high - low < 0.05
    assert len(answer["probes"]) == 4 * len(answer["runs"])
    assert all((p["value"] <= 30) == p["passed"] for p in answer["probes"])


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--max-shortfall", "-1"], "--max-shortfall"),
        (["--max-shortfall", "3", "--tolerance", "0"], "--tolerance"),
        (["--max-shortfall", "3", "--per-round", "1"], "--per-round"),
        (["--max-shortfall", "3", "--days", "0"], "--days"),
    ],
)
def test_plan_refuses_a_bad_flag_naming_it(inputs_dir, capsys, extra, says):
    argv = ["lifecycle", "plan", "--inputs", str(inputs_dir), "--question", "target-factor", *extra]
    assert run(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after argparse's usage lines
    assert last.startswith(f"simfleet lifecycle plan: error: argument {says}")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"variants": [{"name": "a"}, {"name": "b"}]}, "variants: "),
        ({"maintenance": {"mi8": {"repair_slots": 0}}}, "maintenance.mi8.repair_slots"),
        ({"maintenance": {"an2": {"repair_slots": 2}}}, "maintenance.an2"),
        ({"variants": [{"name": "late", "targets": [{"factor": 2, "start": "2031-01-01"}]}]},
         "variants[0].targets[0].start"),
    ],
)
def test_plan_refuses_a_bad_variants_file_naming_the_file_and_key(inputs_dir, tmp_path, capsys, data, key):
    path = variants_file(tmp_path, data, "bad.yaml")
    assert run(["lifecycle", "plan", "--inputs", str(inputs_dir), "--question", "repair-slots", "--max-shortfall",
                "3", "--variants", str(path)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bad.yaml" in err and key in err


def test_run_with_variants_prints_them_side_by_side_and_writes_bands_plot_and_mp2(inputs_dir, tmp_path, capsys):
    out, bands_csv, plot = tmp_path / "mp2", tmp_path / "bands.csv", tmp_path / "bands.png"
    assert run(["lifecycle", "run", "--inputs", str(inputs_dir), "--days", "250", "--variants", str(EXAMPLE),
                "--bands", str(bands_csv), "--plot", str(plot), "--out", str(out),
                "--log", "aggregates"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "days with a shortfall over 250 days, by variant (3 replications each)" in text
    table = text[text.index("by variant"):].splitlines()
    names = ["base", "summer targets +10%", "repairs +30 days", "2 slots per type"]
    assert [line[: len(name)] for line, name in zip(table[4:8], names, strict=True)] == names
    assert all(line.count("..") == 2 for line in table[4:8])  # a mean and a 5th..95th percentile for each type
    with bands_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 2 * 250
    assert {row["variant"] for row in rows} == set(names)
    assert all(float(r["ops_current_p5"]) <= float(r["ops_current_mean"]) <= float(r["ops_current_p95"]) for r in rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    daily = pq.read_table(out / "mp2_daily").to_pydict()
    assert set(daily["variant_id"]) == {0, 1, 2, 3} and set(daily["replication"]) == {0, 1, 2}
    assert len(daily["day"]) == 4 * 3 * 2 * 250
    assert not list(tmp_path.glob(".*partial*"))


def test_run_without_variants_prints_as_before(inputs_dir, capsys):
    assert run(["lifecycle", "run", "--inputs", str(inputs_dir), "--days", "20", "--log", "aggregates"]) == 0
    text = capsys.readouterr().out
    assert "by variant" not in text and "runs of the ensemble" not in text
    assert "days with a shortfall: mi8" in text


def test_run_refuses_a_variants_file_outside_the_horizon_before_running(inputs_dir, tmp_path, capsys):
    path = variants_file(tmp_path, {"variants": [{"name": "x", "minutes": [{"offset": 5, "end": "2025-03-01"}]}]})
    assert run(["lifecycle", "run", "--inputs", str(inputs_dir), "--days", "30", "--variants", str(path),
                "--bands", str(tmp_path / "b.csv")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "v.yaml" in err and "variants[0].minutes[0].end" in err and "outside the horizon" in err
    assert not (tmp_path / "b.csv").exists()


def test_the_shipped_variants_files_load_and_the_docs_show_the_example_as_it_is():
    import datetime as dt

    from simfleet.worker.lifecycle.planning import base_plan
    from simfleet.worker.lifecycle.variants import check_ensemble, load_variants

    for path in sorted((REPO / "config" / "variants").glob("*.yaml")):
        check_ensemble(load_variants(path), dt.date(2025, 1, 1), 243, source=str(path))
    base_plan(load_variants(REPO / "config" / "variants" / "plan_base.yaml"))
    text = (REPO / "docs" / "planning.md").read_text()
    shown = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(shown) == yaml.safe_load(EXAMPLE.read_text())
