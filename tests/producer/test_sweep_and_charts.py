import csv
import json

import matplotlib.pyplot as plt

from simfleet.producer.charts import plot_sla_search, plot_sweep_latency, plot_utilisation_heatmap, sweep_latency_figure
from simfleet.producer.cli import main
from simfleet.producer.rate_sweep import sla_rows, sweep_rates, write_rows_csv
from simfleet.producer.sla import search_sla
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import parse_scenario

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny():
    return parse_scenario(
        {
            "name": "tiny",
            "horizon_s": 3_000,
            "warmup_s": 100,
            "resources": {"cpu": {"capacity": 1.0}, "mem": {"kind": "space", "capacity": 8}},
            "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}, "space": {"mem": 1}}},
            "request_types": {"r": {"rate_per_min": 20, "nodes": {"job": {"tool": "job"}}}},
        }
    )


def local(scenario, replications, seed, first=0):
    return run_replications(scenario, replications=first + replications, seed=seed, processes=1, first=first)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), len(data)


def test_sweep_latency_grows_with_load_and_rows_are_flat(tmp_path):
    sweep = sweep_rates(tiny(), [12, 30, 45], local, replications=3, seed=4)
    means = [s.mean for s in sweep.figure("r", "mean_s")]
    assert means[0] < means[1] < means[2]
    assert [round(u, 1) for u in sweep.utilisation()[0]] == [0.2, 0.5, 0.8]
    sweep.write_csv(tmp_path / "sweep.csv")
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(rows) == 3 * 2  # (rate, type) with the type and (all)
    assert {"rate_per_min", "request_type", "p95_s", "p95_s_ci95", "utilisation_cpu", "utilisation_mem",
            "near_saturation", "waiting_cpu", "bottleneck_candidate"} <= set(rows[0])  # fmt: skip
    assert [row["near_saturation"] for row in rows] == ["False"] * 6
    assert {row["bottleneck_candidate"] for row in rows} == {"cpu"}  # mem (8 units) never fills
    sweep.write_json(tmp_path / "sweep.json")
    written = json.loads((tmp_path / "sweep.json").read_text())
    assert written["rates_per_min"] == [12, 30, 45] and written["near_saturation"] == [False] * 3


def test_charts_are_real_pngs(tmp_path):
    sweep = sweep_rates(tiny(), [12, 30, 45], local, replications=2, seed=4)
    width, height, size = png_size(plot_sweep_latency(sweep, tmp_path / "l.png", metric="p95", threshold_s=5))
    assert width > 600 and height > 400 and size > 10_000
    width, height, size = png_size(plot_utilisation_heatmap(sweep, tmp_path / "h.png"))
    assert width > 400 and size > 5_000
    result = search_sla(tiny(), local, request_type="r", metric="mean", threshold_s=3.0, replications=2, seed=1)
    assert png_size(plot_sla_search(result, tmp_path / "s.png"))[2] > 10_000
    write_rows_csv(sla_rows(result), tmp_path / "probes.csv")
    probes = list(csv.DictReader((tmp_path / "probes.csv").open()))
    assert len(probes) == len(result.probes) and probes[0]["r_mean_threshold_s"] == "3.0"
    assert {p["verdict"] for p in probes} <= {"pass", "fail", "undecided"} and "r_mean_ci95_s" in probes[0]


def test_des_sweep_command_writes_results_and_plots(tmp_path, capsys):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(json.dumps(tiny().to_dict()))
    out = tmp_path / "out"
    code = main(["des", "sweep", str(scenario), "--rates", "12", "30", "--replications", "2", "--threshold", "5",
                 "--out", str(out), "--processes", "1"])  # fmt: skip
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "sweep.json", "sweep.csv", "latency_vs_rate.png", "utilisation_heatmap.png"
    }  # fmt: skip
    printed = capsys.readouterr()
    assert "cpu (0." in printed.out and "held back" in printed.out
    assert "warning: no rate can meet p95 of r < 5 s" not in printed.err  # alone, r's p95 is about 3 s


def test_des_sweep_warns_on_stderr_and_flags_near_saturation_rows(tmp_path, capsys):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(json.dumps(tiny().to_dict()))
    code = main(["des", "sweep", str(scenario), "--rates", "12", "58", "--replications", "2", "--threshold", "2",
                 "--out", str(tmp_path / "out"), "--processes", "1", "--json", "--seed", "4"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    rows = json.loads(printed.out)
    assert [row["near_saturation"] for row in rows] == [False, False, True, True]
    warnings = printed.err.splitlines()
    assert warnings[0].startswith("warning: no rate can meet p95 of r < 2 s: even alone its p95 is 2.9")
    assert "warning: at 58 requests/min: near saturation: cpu is 9" in printed.err
    assert not [line for line in warnings if line.startswith("warning: at 12 ")]


def test_the_sweep_plot_marks_unstable_and_near_saturation_rates_on_a_log_axis_with_the_sla_line():
    # 12 and 45/min are calm, 58/min is 97% busy (near saturation), 70/min is above capacity: p95 from 4 s to 500 s.
    sweep = sweep_rates(tiny(), [12, 45, 58, 70], local, replications=2, seed=4)
    assert sweep.near_saturation == [False, False, True, False]
    assert [a.stable for a in sweep.aggregates] == [True, True, True, False]
    fig, ax = sweep_latency_figure(sweep, metric="p95", threshold_s=5)
    plt.close(fig)
    assert ax.get_yscale() == "log" and "latency (s" in ax.get_ylabel() and "requests/min" in ax.get_xlabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["SLA p95 < 5 s"].get_ydata()) == [5, 5]
    unstable = lines["unstable (no steady state: see the table)"]
    assert list(unstable.get_xdata()) == [70, 70] and unstable.get_marker() == "X"  # the type and (all)
    near = lines["near saturation (see the warnings)"]
    assert list(near.get_xdata()) == [58, 58] and near.get_marker() == "^"
    calm, calm_ax = sweep_latency_figure(sweep_rates(tiny(), [12, 30], local, replications=2, seed=4))
    plt.close(calm)
    assert calm_ax.get_yscale() == "linear"
    assert not [line for line in calm_ax.get_lines() if "saturation" in line.get_label()]
