"""Render the Grafana dashboard (ops/grafana/simfleet.json) to one PNG without Grafana, from a real Prometheus.

Each panel's queries are sent to Prometheus's HTTP API as Grafana would send them (``/api/v1/query_range`` with the
panel's ``expr``, dashboard variables substituted; ``/api/v1/query`` at the end time for ``instant`` targets) and
drawn with matplotlib where the panel's ``gridPos`` puts it: time series as lines named by their ``legendFormat``,
stat and gauge panels as one big number, tables as rows of labels, rows as headings.

Two ways to run it (from the repository root)::

    .venv/bin/python ops/render_dashboard.py OUT.png --prometheus http://127.0.0.1:9090 --since 15m
    .venv/bin/python ops/render_dashboard.py --run docs/images/dashboard.png

The second makes the picture of docs/operations.md from a real run: a local fleet (``simfleet fleet up`` in a
temporary folder, on free ports), a ``prometheus`` process scraping its exporter every second and evaluating
ops/prometheus/alerts.yml, a workload of a few minutes (lifecycle jobs of the 279-airframe reference fleet, a DES
study that fills ``des.run``, a GPU-role worker and a CPU worker killed so that takeovers show), then the render,
and everything stopped again. It needs Debian's ``prometheus`` package (``apt-get install prometheus``).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "ops" / "grafana" / "simfleet.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"

GRID_COLUMNS = 24
"""Grafana's dashboard grid: 24 columns; a grid row is 30 px high, plus 8 px between panels."""
ROW_PX = 38
WIDTH_PX = 1600
DPI = 100
MAX_LEGEND = 8
"""Legend entries shown under a time series panel; more are counted ("and 3 more")."""

BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e8e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d",
           "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477"]  # fmt: skip
"""Grafana's classic series colours."""


class RenderError(Exception):
    """A bad input (dashboard file, Prometheus address, time) or a Prometheus that refuses a query."""


# ----------------------------------------------------------------------------------------------------- Prometheus


@dataclass
class Prometheus:
    """Prometheus's HTTP query API.

    Args:
        url: its base address, e.g. ``http://127.0.0.1:9090``.
        credentials: user and password for basic auth, when it asks for them.
        timeout_s: how long one query may take.
    """

    url: str
    credentials: tuple[str, str] | None = None
    timeout_s: float = 30.0

    def _get(self, path: str, params: dict[str, str]) -> Any:
        request = urllib.request.Request(f"{self.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}")
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise RenderError(f"--prometheus {self.url}: HTTP {exc.code} for {path}") from None
        except (OSError, ValueError) as exc:
            raise RenderError(f"--prometheus {self.url}: no answer ({exc})") from None
        if body.get("status") != "success":
            raise RenderError(f"Prometheus refused {params.get('query')!r}: {body.get('error', body)}")
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """The matrix of ``expr`` from ``start`` to ``end`` (Unix seconds) every ``step`` seconds."""
        data = self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                  "step": f"{step:g}"})  # fmt: skip
        return list(data["result"])

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` at ``at`` (Unix seconds)."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        result = data["result"]
        return list(result) if data.get("resultType") == "vector" else []

    def ready(self) -> bool:
        """Whether it answers ``/-/ready``."""
        try:
            with urllib.request.urlopen(f"{self.url.rstrip('/')}/-/ready", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False


# --------------------------------------------------------------------------------------------------------- panels


@dataclass
class Series:
    """One line of a panel: its legend and its points (Unix seconds, value)."""

    name: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    unit: str = "short"
    right: bool = False
    """Drawn against a second axis on the right (an override's ``custom.axisPlacement: right``)."""

    def last(self) -> float | None:
        """The last value that is a number, as Grafana's ``lastNotNull``."""
        return next((v for v in reversed(self.values) if not math.isnan(v)), None)


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with Grafana's ``$name``, ``${name}`` and ``[[name]]`` replaced by the variables' values."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


def legend(form: str, metric: dict[str, str]) -> str:
    """A series' name as Grafana writes it: ``legendFormat`` with ``{{label}}`` filled in, else the selector."""
    if form and form != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), form).strip() or form
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def field_of(panel: dict[str, Any], ref_id: str) -> tuple[str, bool]:
    """A target's unit and whether its axis is on the right.

    The panel's defaults, then its ``byFrameRefID`` overrides (the kind of override this dashboard uses).
    """
    config = panel.get("fieldConfig", {})
    unit = str(config.get("defaults", {}).get("unit", "short"))
    right = config.get("defaults", {}).get("custom", {}).get("axisPlacement") == "right"
    for override in config.get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") == "byFrameRefID" and matcher.get("options") == ref_id:
            for item in override.get("properties", []):
                if item.get("id") == "unit":
                    unit = str(item.get("value"))
                elif item.get("id") == "custom.axisPlacement":
                    right = item.get("value") == "right"
    return unit, right


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def panel_series(
    prometheus: Prometheus, panel: dict[str, Any], variables: dict[str, str], start: float, end: float, step: float
) -> list[Series]:
    """Every series of a panel's targets over the window, in the targets' order."""
    found: list[Series] = []
    for target in panel.get("targets", []):
        if target.get("hide") or not target.get("expr"):
            continue
        expr = substitute(target["expr"], variables)
        unit, right = field_of(panel, str(target.get("refId", "")))
        if target.get("instant"):
            for sample in prometheus.query(expr, end):
                at, value = sample["value"]
                found.append(Series(legend(target.get("legendFormat", ""), sample["metric"]), [float(at)],
                                    [_number(value)], unit, right))  # fmt: skip
            continue
        for stream in prometheus.query_range(expr, start, end, step):
            points = stream.get("values", [])
            found.append(Series(legend(target.get("legendFormat", ""), stream["metric"]),
                                [float(t) for t, _ in points], [_number(v) for _, v in points], unit,
                                right))  # fmt: skip
    return found


def instant_rows(
    prometheus: Prometheus, panel: dict[str, Any], variables: dict[str, str], end: float
) -> tuple[list[str], list[list[str]]]:
    """A table panel as Grafana's "table" format shows it: one row a series, a column a label, then the value."""
    samples = []
    for target in panel.get("targets", []):
        if target.get("expr") and not target.get("hide"):
            samples += prometheus.query(substitute(target["expr"], variables), end)
    hidden = {"__name__"}
    columns = sorted({key for sample in samples for key in sample["metric"]} - hidden)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    rows = [[sample["metric"].get(c, "") for c in columns] + [format_value(_number(sample["value"][1]), unit)]
            for sample in samples]  # fmt: skip
    return [*columns, "Value"], sorted(rows)


# ---------------------------------------------------------------------------------------------------------- units


def _si(
    value: float, suffix: str = "", base: float = 1000.0, prefixes: Sequence[str] = ("", "K", "M", "G", "T")
) -> str:
    step = 0
    while abs(value) >= base and step < len(prefixes) - 1:
        value /= base
        step += 1
    digits = 0 if value == int(value) else (1 if abs(value) >= 10 else 2)
    return f"{value:.{digits}f}{' ' if prefixes[step] or suffix else ''}{prefixes[step]}{suffix}".rstrip()


def format_value(value: float | None, unit: str) -> str:
    """A value as Grafana writes it for the panel's unit (short, bytes, Bps, s, percent, ...)."""
    if value is None or math.isnan(value):
        return "No data"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "bytes":
        return _si(value, "B", 1024.0, ("", "Ki", "Mi", "Gi", "Ti"))
    if unit in ("Bps", "binBps"):
        return _si(value, "B/s", 1024.0, ("", "Ki", "Mi", "Gi", "Ti"))
    if unit == "s":
        if value != 0 and abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        if abs(value) >= 3600:
            return f"{value / 3600:.3g} h"
        if abs(value) >= 60:
            return f"{value / 60:.3g} min"
        return f"{value:.3g} s"
    if unit == "percent":
        return f"{value:.3g}%" if abs(value) < 1000 else f"{value:.0f}%"
    if unit == "percentunit":
        return f"{100 * value:.3g}%"
    return _si(value) if abs(value) >= 1000 else f"{value:.4g}"


# ---------------------------------------------------------------------------------------------------------- layout


@dataclass
class Layout:
    """Where the dashboard grid falls on the figure: a panel's gridPos to figure fractions."""

    rows: int
    """Grid rows of the whole dashboard (the lowest panel's y + h)."""

    @property
    def height_px(self) -> int:
        """The picture's height."""
        return self.rows * ROW_PX + 16

    def box(self, grid: dict[str, int]) -> tuple[float, float, float, float]:
        """A panel's rectangle (left, bottom, width, height) in figure fractions, with Grafana's gaps."""
        gap = 8
        column_px = (WIDTH_PX - gap) / GRID_COLUMNS
        left = gap + grid["x"] * column_px
        top = 8 + grid["y"] * ROW_PX
        width = grid["w"] * column_px - gap
        height = grid["h"] * ROW_PX - gap
        total = self.height_px
        return (left / WIDTH_PX, 1 - (top + height) / total, width / WIDTH_PX, height / total)


def panels_of(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, a collapsed row's own panels after the row."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) if panel.get("type") == "row" else []


def render(
    dashboard: dict[str, Any],
    prometheus: Prometheus,
    out: Path,
    *,
    start: float,
    end: float,
    variables: dict[str, str] | None = None,
    step: float | None = None,
) -> dict[str, str]:
    """Draw every panel of ``dashboard`` from ``prometheus`` over ``start``..``end`` into the PNG ``out``.

    Args:
        dashboard: the dashboard JSON (Grafana's model: ``panels`` with ``type``, ``title``, ``gridPos``,
            ``targets``).
        prometheus: where the queries go.
        out: the PNG to write.
        start: the window's start, Unix seconds.
        end: its end (and the time of instant queries).
        variables: values of the dashboard's variables (``$name`` in expressions).
        step: seconds between points (default: the window over 400 points, at least 1 s).

    Returns:
        Each panel's title and what was drawn (``lines``, ``number``, ``table``, ``row``, ``no data``, or
        ``not rendered``), in the dashboard's order.

    Raises:
        RenderError: a panel without ``gridPos``, a query Prometheus refuses, or a Prometheus that does not answer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if end <= start:
        raise RenderError(f"the window ends ({end}) before it starts ({start})")
    step = step or max(1.0, (end - start) / 400)
    variables = {"__interval": f"{step:g}s", "__rate_interval": f"{max(4 * step, 60):g}s",
                 "__range": f"{end - start:.0f}s", **(variables or {})}  # fmt: skip
    panels = list(panels_of(dashboard))
    for panel in panels:
        if not {"x", "y", "w", "h"} <= set(panel.get("gridPos", {})):
            raise RenderError(f"panel {panel.get('title', panel.get('id'))!r} has no complete gridPos")
    layout = Layout(max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1))
    figure = plt.figure(figsize=(WIDTH_PX / DPI, layout.height_px / DPI), dpi=DPI, facecolor=BACKGROUND)
    drawn: dict[str, str] = {}
    window = f"{_utc(start)} to {_utc(end)} UTC"
    figure.text(0.995, 1 - 4 / layout.height_px, f"{dashboard.get('title', '')}: {window}", ha="right", va="top",
                color=MUTED, fontsize=8)  # fmt: skip

    for panel in panels:
        kind = panel.get("type", "")
        title = str(panel.get("title", ""))
        left, bottom, width, height = layout.box(panel["gridPos"])
        if kind == "row":
            figure.text(left, bottom + height / 2, title, color=TEXT, fontsize=13, fontweight="bold", va="center")
            drawn[title] = "row"
            continue
        figure.add_artist(FancyBboxPatch((left, bottom), width, height, boxstyle="square,pad=0",
                                         transform=figure.transFigure, facecolor=PANEL, edgecolor=BORDER,
                                         linewidth=0.8, zorder=-10))  # fmt: skip
        title_px = 22
        figure.text(left + 6 / WIDTH_PX, bottom + height - 6 / layout.height_px, title, color=TEXT, fontsize=9.5,
                    fontweight="bold", va="top")  # fmt: skip
        inner_top = bottom + height - title_px / layout.height_px
        unit = str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"))

        if kind == "table":
            columns, rows = instant_rows(prometheus, panel, variables, end)
            drawn[title] = "table" if rows else "no data"
            if not rows:
                _no_data(figure, left, bottom, width, inner_top - bottom)
                continue
            axes = figure.add_axes((left + 0.004, bottom + 0.002, width - 0.008, inner_top - bottom - 0.004))
            axes.axis("off")
            shown = rows[: max(1, int(panel["gridPos"]["h"] * 1.6) - 1)]
            table = axes.table(cellText=shown, colLabels=columns, loc="upper left", cellLoc="left", colLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(8)
            for (row, _), cell in table.get_celld().items():
                cell.set_edgecolor(BORDER)
                cell.set_facecolor(PANEL if row else "#22252b")
                cell.get_text().set_color(TEXT if row else MUTED)
                cell.set_height(0.11)
            continue

        if kind not in ("timeseries", "graph", "stat", "gauge", "bargauge"):
            figure.text(left + width / 2, bottom + height / 2, f"panel type {kind!r} is not rendered", ha="center",
                        va="center", color=MUTED, fontsize=9)  # fmt: skip
            drawn[title] = "not rendered"
            continue

        series = panel_series(prometheus, panel, variables, start, end, step)
        numbers = [s for s in series if s.last() is not None]
        if not numbers:
            _no_data(figure, left, bottom, width, inner_top - bottom)
            drawn[title] = "no data"
            continue

        if kind in ("stat", "gauge", "bargauge"):
            shown = numbers[:4]
            cell = width / len(shown)
            for index, item in enumerate(shown):
                centre = left + cell * (index + 0.5)
                middle = bottom + (inner_top - bottom) * 0.5
                figure.text(centre, middle, format_value(item.last(), unit), ha="center", va="center",
                            color=PALETTE[index % len(PALETTE)], fontsize=26, fontweight="bold")  # fmt: skip
                if len(series) > 1 or item.name:
                    figure.text(centre, bottom + 8 / layout.height_px, item.name, ha="center", va="bottom",
                                color=MUTED, fontsize=8)  # fmt: skip
            drawn[title] = "number"
            continue

        legend_rows = min(len(numbers), MAX_LEGEND + (1 if len(numbers) > MAX_LEGEND else 0))
        legend_columns = 2 if legend_rows > 3 else 1
        legend_px = 13 * math.ceil(legend_rows / legend_columns) + 6
        plot_bottom = bottom + (legend_px + 18) / layout.height_px
        right = [s for s in numbers if s.right]
        axes = figure.add_axes((left + 56 / WIDTH_PX, plot_bottom, width - (116 if right else 66) / WIDTH_PX,
                                inner_top - plot_bottom - 4 / layout.height_px))  # fmt: skip
        axes.set_facecolor(PANEL)
        axes.grid(True, color=BORDER, linewidth=0.6)
        sides = [(axes, [s for s in numbers if not s.right])]
        if right:
            sides.append((axes.twinx(), right))
        handles = []
        for side, members in sides:
            for spine in side.spines.values():
                spine.set_visible(False)
            side.tick_params(colors=MUTED, labelsize=7, length=0)
            for item in members:
                times = [datetime.fromtimestamp(t, UTC) for t in item.times]
                (line,) = side.plot(times, item.values, color=PALETTE[numbers.index(item) % len(PALETTE)],
                                    linewidth=1.3, label=item.name)  # fmt: skip
                handles.append(line)
            if members:
                low = min(min(v for v in s.values if not math.isnan(v)) for s in members)
                high = max(max(v for v in s.values if not math.isnan(v)) for s in members)
                side.set_ylim(min(0.0, low), high * 1.1 if high > 0 else 1.0)
                side.yaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]))
                side.yaxis.set_major_formatter(FuncFormatter(_axis_formatter(members[0].unit)))
        axes.set_xlim(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
        axes.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=8))
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
        labels = [h.get_label() for h in handles[:MAX_LEGEND]]
        shown_handles = handles[:MAX_LEGEND]
        if len(handles) > MAX_LEGEND:
            (extra,) = axes.plot([], [], color=PANEL)
            shown_handles.append(extra)
            labels.append(f"and {len(handles) - MAX_LEGEND} more")
        anchor = (left + 4 / WIDTH_PX, bottom + 2 / layout.height_px)
        figure.legend(shown_handles, labels, loc="lower left", bbox_to_anchor=anchor,
                      ncol=legend_columns, frameon=False, fontsize=7.5, labelcolor=TEXT, handlelength=1.2,
                      borderaxespad=0, columnspacing=1.2, handletextpad=0.5, labelspacing=0.25)  # fmt: skip
        drawn[title] = "lines"

    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=DPI, facecolor=BACKGROUND, metadata={"Software": None})
    plt.close(figure)
    _shrink(out)
    return drawn


def _shrink(png: Path) -> None:
    """The PNG with a 128-colour palette: a third of the size, the same to the eye (flat panels, thin lines)."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def _axis_formatter(unit: str) -> Callable[[float, int], str]:
    def tick(value: float, _position: int) -> str:
        return format_value(value, unit)

    return tick


def _no_data(figure: Any, left: float, bottom: float, width: float, height: float) -> None:
    figure.text(left + width / 2, bottom + height / 2, "No data", ha="center", va="center", color=MUTED, fontsize=10)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def load_dashboard(path: Path) -> dict[str, Any]:
    """The dashboard JSON at ``path`` (Grafana's export, or its ``{"dashboard": ...}`` API wrapper)."""
    try:
        model = json.loads(path.read_text())
    except OSError as exc:
        raise RenderError(f"--dashboard {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise RenderError(f"--dashboard {path}: not JSON ({exc})") from None
    model = model.get("dashboard", model) if isinstance(model, dict) else model
    if not isinstance(model, dict) or not isinstance(model.get("panels"), list):
        raise RenderError(f"--dashboard {path}: no 'panels' list (not a Grafana dashboard)")
    return model


def parse_duration(text: str, flag: str) -> float:
    """``90s``, ``15m``, ``2h`` (or plain seconds) to seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not match:
        raise RenderError(f"{flag} {text!r}: expected a duration such as 90s, 15m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# ------------------------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description="Render ops/grafana/simfleet.json from a Prometheus to one PNG.")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--prometheus", metavar="URL", help="Prometheus's address, e.g. http://127.0.0.1:9090")
    parser.add_argument("--user", help="basic-auth user for Prometheus (the password from $PROMETHEUS_PASSWORD)")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD, help="the dashboard JSON (default: ours)")
    parser.add_argument("--since", default="15m", help="the window: this long before --end (default 15m)")
    parser.add_argument("--end", type=float, help="the window's end, Unix seconds (default: now)")
    parser.add_argument("--step", type=float, help="seconds between points (default: the window over 400)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a dashboard variable")
    parser.add_argument("--run", action="store_true", help="make the fleet, Prometheus and a workload first: the "
                        "picture of docs/operations.md (needs the prometheus binary)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=3.0, help="with --run: how long the workload runs (3)")
    parser.add_argument("--keep", action="store_true", help="with --run: keep the temporary folder (logs, data)")
    args = parser.parse_args(argv)
    try:
        if args.out.suffix.lower() != ".png":
            raise RenderError(f"{args.out}: the output must be a .png file")
        if args.run:
            from dashboard_run import real_run  # the script's folder, ops/, is on the path

            drawn = real_run(args.out, args.minutes, args.keep)
        else:
            if not args.prometheus:
                raise RenderError("--prometheus URL is required (or --run)")
            variables = {}
            for item in args.var:
                name, sep, value = item.partition("=")
                if not sep or not name:
                    raise RenderError(f"--var {item!r}: expected NAME=VALUE")
                variables[name] = value
            credentials = (args.user, os.environ.get("PROMETHEUS_PASSWORD", "")) if args.user else None
            end = args.end if args.end is not None else time.time()
            drawn = render(load_dashboard(args.dashboard), Prometheus(args.prometheus, credentials), args.out,
                           start=end - parse_duration(args.since, "--since"), end=end, variables=variables,
                           step=args.step)  # fmt: skip
    except RenderError as exc:
        print(f"render_dashboard: {exc}", file=sys.stderr)
        return 2
    empty = [title for title, what in drawn.items() if what == "no data"]
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): {len(drawn)} panels"
          + (f", no data in: {', '.join(empty)}" if empty else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
