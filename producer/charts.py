"""PNG charts of DES answers (matplotlib, no display needed).

- Latency against arrival rate with its 95% confidence band and the SLA threshold, from a rate sweep or from the
  probes of an SLA search (probes coloured by pass/fail, the answer's bracket shaded).
- Utilisation heatmap: resource x arrival rate, values written in the cells.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

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


def plot_sla_search(result: SlaResult, path: Path) -> Path:
    """The probes of an SLA search: metric ± CI against rate, pass/fail, the threshold and the answer bracket."""
    probes = sorted((p for p in result.probes if p.stable), key=lambda p: p.rate_per_min)
    fig, ax = plt.subplots(figsize=(8, 5))
    for passed, colour, label in ((True, "seagreen", "meets the SLA"), (False, "crimson", "misses the SLA")):
        chosen = [p for p in probes if p.passed == passed]
        if chosen:
            ax.errorbar(
                [p.rate_per_min for p in chosen],
                [p.metric_s for p in chosen],
                yerr=[p.ci95_s or 0.0 for p in chosen],
                fmt="o",
                color=colour,
                capsize=3,
                label=label,
            )
    if probes:
        ax.plot([p.rate_per_min for p in probes], [p.metric_s for p in probes], color="grey", alpha=0.4)
    ax.axhline(result.threshold_s, color="crimson", linestyle="--", label=f"SLA {result.threshold_s:g} s")
    if result.best_passing and result.first_failing:
        ax.axvspan(
            result.best_passing.rate_per_min,
            result.first_failing.rate_per_min,
            color="gold",
            alpha=0.4,
            label=f"answer: {result.best_passing.rate_per_min:.3f}/min",
        )
    unstable = [p for p in result.probes if not p.stable]
    if unstable:
        ax.plot([], [], " ", label=f"{len(unstable)} unstable probe(s) not drawn")
    ax.set_xlabel(_rate_axis(result.request_type if result.scale == "type" else "mix"))
    ax.set_ylabel(f"{result.metric} latency of {result.request_type} (s), mean ± 95% CI")
    ax.set_title(f"SLA search: {result.metric} < {result.threshold_s:g} s, {len(result.probes)} probes")
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
