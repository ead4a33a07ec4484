"""ops/render_dashboard.py, the Grafana-free rendering of ops/grafana/simfleet.json, against a stand-in Prometheus: a
real HTTP server answering the query API with canned series, which records what it was asked. The picture in
docs/operations.md comes from a real fleet and a real Prometheus (``render_dashboard.py --run``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib.image
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ops" / "render_dashboard.py"
DASHBOARD = ROOT / "ops" / "grafana" / "simfleet.json"


def load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_dashboard", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


renderer = load_renderer()


class StubPrometheus:
    """Answers /api/v1/query_range with two series a query (labels queue, job_id, state, ... all set) and
    /api/v1/query with one sample; an expression containing ``empty`` gets no series, ``broken`` a 400."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                stub.asked.append((url.path, params))
                status, body = stub.answer(url.path, params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def labels(index: int) -> dict[str, str]:
        names = ("queue", "priority", "role", "worker", "work", "state", "job_id", "operation", "study_id", "server")
        return {"__name__": "simfleet_x", **{name: f"{name}-{index}" for name in names}}

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        query = params.get("query", "")
        if "broken" in query:
            return 400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 1"}
        if path == "/api/v1/query":
            result = [] if "empty" in query else [
                {"metric": self.labels(i), "value": [float(params["time"]), str(i + 1)]} for i in range(2)]
            return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
        if path == "/api/v1/query_range":
            start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
            times = np.arange(start, end + step / 2, step)
            result = [] if "empty" in query else [
                {"metric": self.labels(i), "values": [[t, str(1000 * (i + 1) + 10 * k)] for k, t in enumerate(times)]}
                for i in range(2)
            ]  # fmt: skip
            return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return 404, {"status": "error", "error": "no such endpoint"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[StubPrometheus]:
    server = StubPrometheus()
    yield server
    server.close()


def colour_share(png: Path, hex_colour: str) -> float:
    """The share of the picture's pixels that have this colour (within a small tolerance)."""
    pixels = matplotlib.image.imread(png)[..., :3]
    wanted = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return float(np.mean(np.all(np.abs(pixels - wanted) < 0.02, axis=-1)))


def test_every_panel_of_our_dashboard_is_drawn_from_the_queries_grafana_would_send(stub, tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    out = tmp_path / "dashboard.png"
    drawn = renderer.render(dashboard, renderer.Prometheus(stub.url), out, start=1_700_000_000,
                            end=1_700_000_600, step=5)  # fmt: skip

    kinds = {"row": "row", "timeseries": "lines", "table": "table", "stat": "number", "gauge": "number"}
    assert drawn == {p["title"]: kinds[p["type"]] for p in dashboard["panels"]}
    ranged = {p["query"] for path, p in stub.asked if path == "/api/v1/query_range"}
    instant = {p["query"] for path, p in stub.asked if path == "/api/v1/query"}
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert ranged | instant == {t["expr"] for t in targets}
    assert instant == {t["expr"] for t in targets if t.get("instant")}
    assert all(p["start"] == "1700000000.000" and p["end"] == "1700000600.000" and p["step"] == "5"
               for path, p in stub.asked if path == "/api/v1/query_range")  # fmt: skip

    height = 8 + max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]) * renderer.ROW_PX + 8
    assert matplotlib.image.imread(out).shape[:2] == (height, renderer.WIDTH_PX)
    assert out.stat().st_size < 400_000
    assert colour_share(out, renderer.PALETTE[0]) > 0.001, "no line of the first series colour"
    assert colour_share(out, renderer.PANEL) > 0.3, "the panels' background is missing"


def test_stat_gauge_empty_unknown_panels_and_variables(stub, tmp_path):
    def panel(kind: str, title: str, expr: str, x: int, unit: str = "short") -> dict[str, Any]:
        return {"type": kind, "title": title, "gridPos": {"x": x, "y": 0, "w": 6, "h": 6},
                "fieldConfig": {"defaults": {"unit": unit}},
                "targets": [{"expr": expr, "legendFormat": "{{queue}} on $job"}]}  # fmt: skip

    dashboard = {"title": "t", "panels": [
        panel("stat", "Waiting", 'sum(simfleet_queue_messages{job="$job"})', 0),
        panel("gauge", "Memory", "simfleet_redis_used_memory_bytes{job=\"${job}\"}[[window]]", 6, "bytes"),
        panel("timeseries", "Nothing", "empty_series", 12),
        panel("text", "Notes", "", 18),
    ]}  # fmt: skip
    out = tmp_path / "small.png"
    drawn = renderer.render(dashboard, renderer.Prometheus(stub.url), out, start=100.0, end=400.0,
                            variables={"job": "simfleet", "window": ""})  # fmt: skip

    assert drawn == {"Waiting": "number", "Memory": "number", "Nothing": "no data", "Notes": "not rendered"}
    asked = [p["query"] for path, p in stub.asked if path == "/api/v1/query_range"]
    assert asked == ['sum(simfleet_queue_messages{job="simfleet"})', 'simfleet_redis_used_memory_bytes{job="simfleet"}',
                     "empty_series"]  # fmt: skip
    assert {p["step"] for _, p in stub.asked} == {"1"}  # 300 s over 400 points, at least 1 s
    assert colour_share(out, renderer.PALETTE[0]) > 0.0005, "the big number is not drawn"


def test_legends_units_and_variables_as_grafana_writes_them():
    metric = {"__name__": "simfleet_queue_messages", "queue": "des.run", "kind": "shared"}
    assert renderer.legend("{{queue}} ({{ kind }})", metric) == "des.run (shared)"
    assert renderer.legend("", metric) == 'simfleet_queue_messages{kind="shared", queue="des.run"}'
    assert renderer.substitute("rate(x{job=~\"$job\"}[$__rate_interval])", {"job": "a|b", "__rate_interval": "1m"}) \
        == 'rate(x{job=~"a|b"}[1m])'
    assert renderer.format_value(3 * 2**30, "bytes") == "3 GiB"
    assert renderer.format_value(1536, "Bps") == "1.50 KiB/s"
    assert renderer.format_value(0.25, "s") == "250 ms"
    assert renderer.format_value(42.5, "percent") == "42.5%"
    assert renderer.format_value(12_500, "short") == "12.5 K"
    assert renderer.format_value(float("nan"), "short") == "No data"


def test_a_target_with_its_own_unit_gets_the_right_axis(stub, tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    panel = next(p for p in dashboard["panels"] if p["title"].startswith("Newest checkpoint size"))
    assert renderer.field_of(panel, "A") == ("bytes", False)
    assert renderer.field_of(panel, "B") == ("s", True)
    series = renderer.panel_series(renderer.Prometheus(stub.url), panel, {}, 0.0, 60.0, 10.0)
    assert [(s.unit, s.right) for s in series] == [("bytes", False)] * 2 + [("s", True)] * 2
    drawn = renderer.render({"panels": [{**panel, "gridPos": {"x": 0, "y": 0, "w": 8, "h": 8}}]},
                            renderer.Prometheus(stub.url), tmp_path / "p.png", start=0.0, end=60.0)  # fmt: skip
    assert drawn == {panel["title"]: "lines"}


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)  # fmt: skip


def test_the_command_writes_the_png_and_says_so(stub, tmp_path):
    out = tmp_path / "out" / "dashboard.png"
    done = run_script(str(out), "--prometheus", stub.url, "--since", "10m")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out} (") and "panels" in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prometheus", "http://127.0.0.1:1"], "--prometheus http://127.0.0.1:1: no answer"),
        (["--prometheus", "{stub}", "--dashboard", "{tmp}/missing.json"], "--dashboard {tmp}/missing.json: No such"),
        (["--prometheus", "{stub}", "--dashboard", "{tmp}/bad.json"], "--dashboard {tmp}/bad.json: not JSON"),
        (["--prometheus", "{stub}", "--since", "ten minutes"], "--since 'ten minutes': expected a duration"),
        (["--prometheus", "{stub}", "--var", "job"], "--var 'job': expected NAME=VALUE"),
        (["--prometheus", "{stub}", "--dashboard", "{tmp}/broken.json"], "Prometheus refused 'broken_expr'"),
        ([], "--prometheus URL is required (or --run)"),
    ],
)
def test_bad_inputs_get_one_line_naming_them(stub, tmp_path, args, message):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "broken.json").write_text(json.dumps({"panels": [
        {"type": "timeseries", "title": "b", "gridPos": {"x": 0, "y": 0, "w": 6, "h": 6},
         "targets": [{"expr": "broken_expr"}]}]}))  # fmt: skip
    args = [a.format(stub=stub.url, tmp=tmp_path) for a in args]
    done = run_script(str(tmp_path / "x.png"), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("render_dashboard: ")
    assert message.format(tmp=tmp_path) in lines[0]
    assert not (tmp_path / "x.png").exists()
