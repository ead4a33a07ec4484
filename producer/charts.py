"""PNG charts of DES answers (matplotlib, no display needed).

- Latency against arrival rate with its 95% confidence band and the SLA threshold, from a rate sweep or from the
  probes of an SLA search (probes coloured by pass/fail, the answer's bracket shaded).
- The probes of a capacity search: metric against capacity (or cost) with interval bands and the threshold.
- Utilisation heatmap: resource x arrival rate, values written in the cells.
- Sensitivity bars of a bottleneck study: per resource, the change of each watched metric for one more step.
- A lifecycle ensemble's bands: per aircraft type, ops_current against the target with the 5-95% band over
  replications, one line per plan variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

if TYPE_CHECKING:  # annotations only: a lifecycle plot does not load the DES modules (seconds of scipy)
    from simfleet.producer.bottleneck import BottleneckResult
    from simfleet.producer.capacity import CapacityProbe, CapacityResult
    from simfleet.producer.confidence import SlaTerm
    from simfleet.producer.rate_sweep import SweepResult
    from simfleet.producer.sla import SlaResult


def _save(fig: Any, ax: Any, path: Path) -> Path:
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rate_axis(scale: str) -> str:
    """The x-axis label of a swept or searched rate: one type's own rate, or the total rate of the mix."""
    return "total arrival rate of the mix, requests/min" if scale == "mix" else f"arrival rate of {scale}, requests/min"


LOG_SPAN = 100.0
"""A latency axis is logarithmic when the plotted values span more than this factor (two decades)."""


def sweep_latency_figure(
    sweep: SweepResult, *, metric: str = "p95", threshold_s: float | None = None
) -> tuple[Any, Any]:
    """The figure and axes of :func:`plot_sweep_latency`, not yet saved (tests read their properties).

    Each request type's metric against the swept rate with its 95% band; rates whose replications were unstable
    are marked with a red cross, rates near saturation (``SweepResult.near_saturation``) with an open orange
    triangle, each with its legend entry; the SLA threshold is a labelled dashed line; the latency axis is
    logarithmic when the plotted values (and the threshold) span more than :data:`LOG_SPAN`.
    """
    figure_name = "mean_s" if metric == "mean" else f"{metric}_s"
    fig, ax = plt.subplots(figsize=(8, 5))
    unstable = [not agg.stable for agg in sweep.aggregates]
    near = sweep.near_saturation
    plotted: list[float] = [] if threshold_s is None else [threshold_s]
    marked: dict[str, tuple[list[float], list[float]]] = {"unstable": ([], []), "near": ([], [])}
    for name in sweep.request_types():
        stats = sweep.figure(name, figure_name)
        means = [s.mean if s.mean is not None else math.nan for s in stats]
        half = [s.ci95 or 0.0 for s in stats]
        plotted += [m for m in means if math.isfinite(m) and m > 0]
        (line,) = ax.plot(sweep.rates_per_min, means, marker="o", label=name)
        ax.fill_between(
            sweep.rates_per_min,
            [m - h for m, h in zip(means, half, strict=True)],
            [m + h for m, h in zip(means, half, strict=True)],
            color=line.get_color(),
            alpha=0.2,
        )
        for i, (rate, mean) in enumerate(zip(sweep.rates_per_min, means, strict=True)):
            kind = "unstable" if unstable[i] else ("near" if near[i] else None)
            if kind is not None and math.isfinite(mean):
                marked[kind][0].append(rate)
                marked[kind][1].append(mean)
    if marked["unstable"][0]:
        ax.plot(*marked["unstable"], linestyle="none", marker="X", markersize=11, color="crimson",
                label="unstable (no steady state: see the table)")  # fmt: skip
    if marked["near"][0]:
        ax.plot(*marked["near"], linestyle="none", marker="^", markersize=11, markerfacecolor="none",
                markeredgecolor="darkorange", markeredgewidth=2,
                label="near saturation (see the warnings)")  # fmt: skip
    log = bool(plotted) and max(plotted) > LOG_SPAN * min(plotted)
    if log:
        ax.set_yscale("log")
    if threshold_s is not None:
        ax.axhline(threshold_s, color="crimson", linestyle="--", label=f"SLA {metric} < {threshold_s:g} s")
        # Keep the SLA line off the frame when it is the highest thing drawn.
        low, high = ax.get_ylim()
        top = threshold_s * 1.3 if log else threshold_s + 0.05 * (threshold_s - low)
        ax.set_ylim(low, max(high, top))
    scale = ", log scale" if log else ""
    ax.set_xlabel(_rate_axis(sweep.scale))
    ax.set_ylabel(f"{metric} latency (s{scale}), mean ± 95% CI over replications")
    ax.set_title(f"{sweep.scenario}: {metric} latency against load")
    return fig, ax


def plot_sweep_latency(
    sweep: SweepResult, path: Path, *, metric: str = "p95", threshold_s: float | None = None
) -> Path:
    """Each request type's latency against the swept rate, the SLA line, unstable and near-saturation rates marked.

    See :func:`sweep_latency_figure`; the PNG is written to ``path``.
    """
    fig, ax = sweep_latency_figure(sweep, metric=metric, threshold_s=threshold_s)
    return _save(fig, ax, path)


DECISION_MARKS = {
    "pass": ("o", "meets the SLA"),
    "fail": ("x", "misses the SLA"),
    "undecided": ("s", "undecided at cap"),
}
"""How a search's plots mark each decision: a marker and its legend text."""


def _decided_points(ax: Any, rows: Sequence[tuple[float, Any, Any]], scale: float, colour: str, name: str) -> None:
    """One term's points (x, its outcome, the decision) as mean ± 95% CI over ``scale``, marked by decision."""
    for verdict, (marker, label) in DECISION_MARKS.items():
        chosen = [(x, t) for x, t, v in rows if v == verdict]
        if chosen:
            ax.errorbar([x for x, _ in chosen], [t.value.mean / scale for _, t in chosen],
                        yerr=[(t.value.ci95 or 0.0) / scale for _, t in chosen], fmt=marker, color=colour,
                        capsize=3, label=f"{name}: {label}")  # fmt: skip


def _term_axis(term: SlaTerm) -> str:
    """The y axis of a single term's plot: ``p95 latency of X (s)``, ``success ratio of X``."""
    if term.floor:
        return f"success ratio of {term.request_type} (at least {term.threshold:g}), mean ± 95% CI"
    return f"{term.metric} latency of {term.request_type} (s), mean ± 95% CI"


def _ratio_axis(terms: Sequence[SlaTerm]) -> str:
    """The y axis of a several-term plot, where each term is drawn over its threshold."""
    if any(t.floor for t in terms):
        return "metric / its SLA threshold (1 = threshold: latency below, success ratio above), mean ± 95% CI"
    return "latency metric / its SLA threshold (1 = threshold), mean ± 95% CI"


def _threshold_label(term: SlaTerm) -> str:
    """The legend of a single term's threshold line: ``SLA 30 s``, ``SLA success ratio ≥ 0.99``."""
    return f"SLA success ratio ≥ {term.threshold:g}" if term.floor else f"SLA {term.threshold:g} s"


def plot_sla_search(result: SlaResult, path: Path) -> Path:
    """The probes of an SLA search: each term's metric / threshold ± 95% CI against rate, decisions, the bracket.

    With one term the y axis is the metric (seconds, or a success ratio) against its threshold; with several, each
    term's mean over its threshold (1 is the threshold), so that every term shares the axis.
    """
    single = len(result.terms) == 1
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, term in enumerate(result.terms):
        colour = colours[index % len(colours)]
        scale = 1.0 if single else term.threshold
        rows = sorted(((p.rate_per_min, t, p.verdict) for p in result.probes for t in p.terms
                       if t.term == term and t.value.finite), key=lambda row: row[0])  # fmt: skip
        if rows:
            ax.plot([r for r, _, _ in rows], [t.value.mean / scale for _, t, _ in rows], color=colour, alpha=0.35)
        _decided_points(ax, rows, scale, colour, f"{term.request_type} {term.metric}")
    threshold = result.terms[0].threshold if single else 1.0
    ax.axhline(threshold, color="crimson", linestyle="--",
               label=_threshold_label(result.terms[0]) if single else "SLA threshold (ratio 1)")  # fmt: skip
    if result.best_passing and result.first_failing:
        ax.axvspan(result.best_passing.rate_per_min, result.first_failing.rate_per_min, color="gold", alpha=0.4,
                   label=f"answer: {result.best_passing.rate_per_min:.4g}/min with 95% confidence")  # fmt: skip
    unstable = [p for p in result.probes if not p.stable]
    if unstable:
        ax.plot([], [], " ", label=f"{len(unstable)} unstable probe(s) not drawn")
    ax.set_xlabel(_rate_axis(result.request_type if result.scale == "type" else "mix"))
    if single:
        ax.set_ylabel(_term_axis(result.terms[0]))
        ax.set_title(f"SLA search: {result.terms[0].text}, {len(result.probes)} probes")
    else:
        ax.set_ylabel(_ratio_axis(result.terms))
        ax.set_title(f"SLA search over {len(result.terms)} terms, {len(result.probes)} probes")
    return _save(fig, ax, path)


def plot_utilisation_heatmap(sweep: SweepResult, path: Path) -> Path:
    """Mean utilisation of every resource at every swept rate."""
    matrix = sweep.utilisation()
    resources = sweep.resources()
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(sweep.rates_per_min) + 2), 1 + 0.6 * len(resources)))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(sweep.rates_per_min)), [f"{r:g}" for r in sweep.rates_per_min])
    ax.set_yticks(range(len(resources)), resources)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    ax.set_xlabel(_rate_axis(sweep.scale))
    ax.set_title(f"{sweep.scenario}: utilisation by resource and load")
    fig.colorbar(image, ax=ax, label="mean utilisation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sensitivity(result: BottleneckResult, path: Path) -> Path:
    """Horizontal bars, ranked top to bottom: each watched metric's change for one more step, ± its 95% interval.

    A resource without a step, or unstable with one more step, keeps its row with the reason written in place of
    the bars, so the chart lists every resource the table does.
    """
    resources = result.resources
    terms = result.watched
    height = 0.8 / max(1, len(terms))
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.5 * len(resources) * max(1, len(terms))))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for t, watched in enumerate(terms):
        ys, changes, errors = [], [], []
        for row, report in enumerate(resources):
            sens = next((s for s in report.sensitivities if s.watched == watched), None)
            if sens is None or sens.change is None or not sens.change.finite:
                continue
            ys.append(row + (t - (len(terms) - 1) / 2) * height)
            changes.append(sens.change.mean)
            errors.append(sens.change.ci95 or 0.0)
        term = watched.term
        label = watched.describe() + ("" if term is None else f" (SLA {term.op} {term.threshold:g}{term.unit})")
        ax.barh(ys, changes, height=height, xerr=errors, capsize=3, color=colours[t % len(colours)], label=label)
    for row, report in enumerate(resources):
        if report.note is not None:
            ax.text(0, row, f"  {report.note}", va="center", ha="left", fontsize=8, color="dimgray")
    ax.axvline(0.0, color="black", linewidth=0.8)
    labels = [f"{r.name} (+{r.resource.step:g} {r.resource.unit})".replace(" )", ")") if r.resource.step is not None
              else r.name for r in resources]  # fmt: skip
    ax.set_yticks(range(len(resources)), labels)
    ax.invert_yaxis()
    if any(w.floor for w in terms):
        ax.set_xlabel("change of the watched metric for one more step: latency in s, success ratio as a ratio "
                      "(mean ± 95% CI, paired replications)")  # fmt: skip
    else:
        ax.set_xlabel("change of the latency metric for one more step, s (mean ± 95% CI, paired replications)")
    ax.set_ylabel("resource (+ one step), ranked")
    top = result.bottleneck
    verdict = f"add {top.name} first" if top is not None else "no significant bottleneck"
    ax.set_title(f"{result.scenario}: sensitivity to one more step, {result.replications} replications ({verdict})")
    return _save(fig, ax, path)


def plot_capacity_search(result: CapacityResult, path: Path) -> Path:
    """The probes of a capacity search: each term's metric ± 95% CI against capacity, the threshold, the answer.

    Each point is marked by its term's own decision (a candidate fails when one term fails, though others may pass).

    With one term the y axis is the metric (seconds, or a success ratio) against its threshold; with several, each
    term's mean over its threshold (1 is the threshold). With one searched resource the x axis is its capacity (in
    its unit); with several it is each probe's cost, since a point of the grid has no single capacity.
    """
    single = len(result.terms) == 1
    one_resource = len(result.resources) == 1
    name = result.resources[0]

    def x_of(probe: CapacityProbe) -> float:
        return probe.capacities[name] if one_resource else probe.cost

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, term in enumerate(result.terms):
        colour = colours[index % len(colours)]
        scale = 1.0 if single else term.threshold
        rows = sorted(((x_of(p), t, t.verdict) for p in result.probes for t in p.terms
                       if t.term == term and t.value.finite), key=lambda row: row[0])  # fmt: skip
        if rows and one_resource:
            xs = [x for x, _, _ in rows]
            means = [t.value.mean / scale for _, t, _ in rows]
            half = [(t.value.ci95 or 0.0) / scale for _, t, _ in rows]
            ax.plot(xs, means, color=colour, alpha=0.35)
            ax.fill_between(xs, [m - h for m, h in zip(means, half, strict=True)],
                            [m + h for m, h in zip(means, half, strict=True)], color=colour, alpha=0.15)  # fmt: skip
        _decided_points(ax, rows, scale, colour, f"{term.request_type} {term.metric}")
    threshold = result.terms[0].threshold if single else 1.0
    ax.axhline(threshold, color="crimson", linestyle="--",
               label=_threshold_label(result.terms[0]) if single else "SLA threshold (ratio 1)")  # fmt: skip
    if result.answer is not None:
        unit = result.units[name] if one_resource else "(cost)"
        ax.axvline(x_of(result.answer), color="gold", linewidth=3, alpha=0.6,
                   label=f"answer: {x_of(result.answer):g} {unit}")  # fmt: skip
    unstable = [p for p in result.probes if not all(t.value.finite for t in p.terms)]
    if unstable:
        ax.plot([], [], " ", label=f"{len(unstable)} unstable probe(s) not drawn")
    if one_resource:
        ax.set_xlabel(f"capacity of {name} ({result.units[name]}), step {result.step[name]:g}")
    else:
        costs = ", ".join(f"{n} {result.costs[n]:g} per {result.units[n]}" for n in result.resources)
        ax.set_xlabel(f"cost of the probed combination ({costs})")
    if single:
        ax.set_ylabel(_term_axis(result.terms[0]))
    else:
        ax.set_ylabel(_ratio_axis(result.terms))
    ax.set_title(f"capacity search of {result.scenario}: {len(result.probes)} probes")
    return _save(fig, ax, path)


def plot_lifecycle_bands(table: dict[str, Any], names: Sequence[str], path: Path) -> Path:
    """Airframes in operation against the target, a panel per aircraft type, a colour per variant, written as PNG.

    ``table`` is :func:`simfleet.worker.lifecycle.planning.bands`; ``names`` names variant ``i``. Each variant's mean
    ``ops_current`` over its replications is a solid line with its 5th-95th percentile band shaded (no band with
    one replication: it is the line), its ``ops_target`` a dashed line of the same colour. One legend, right of the
    panels, names the variants and the three line styles. The PNG is written to ``path`` whatever its suffix (a
    staging path of :func:`~simfleet.shared.outputs.atomic_output`).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from simfleet.shared.lifecycle_contract import AC_TYPES

    fig, axes = plt.subplots(len(AC_TYPES), 1, figsize=(11, 3.2 * len(AC_TYPES)), sharex=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    variant_ids = sorted({int(v) for v in table["variant_id"]})
    for t, ac_type in enumerate(AC_TYPES):
        ax = axes[t, 0]
        for v in variant_ids:
            rows = (table["variant_id"] == v) & (table["ac_type"] == t)
            colour = colours[v % len(colours)]
            dates = table["date"][rows]
            ax.plot(dates, table["ops_current_mean"][rows], color=colour, linewidth=1.2)
            low, high = table["ops_current_p5"][rows], table["ops_current_p95"][rows]
            if (low != high).any():
                ax.fill_between(dates, low, high, color=colour, alpha=0.18, linewidth=0)
            ax.plot(dates, table["ops_target"][rows], color=colour, linestyle="--", linewidth=0.9)
        ax.set_ylabel(f"{ac_type}, aircraft")
        ax.set_title(f"{ac_type}: airframes in operation vs target", fontsize=10)
        ax.grid(alpha=0.3)
    handles: list[Any] = [Line2D([], [], color=colours[v % len(colours)], linewidth=3, label=names[v])
                          for v in variant_ids]  # fmt: skip
    handles += [Line2D([], [], color="dimgray", label="in operation (mean)"),
                Patch(color="dimgray", alpha=0.25, label="5-95% over replications"),
                Line2D([], [], color="dimgray", linestyle="--", label="ops_target")]  # fmt: skip
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.79, 0.5), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("date")
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path
