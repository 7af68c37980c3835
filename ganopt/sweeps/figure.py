"""summary.png: each group's seeds as points, coloured by their verdict, with the mean and its
95 % bootstrap interval beside them; a group without a value shows "no value", never a zero."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ganopt import evidence
from ganopt.rundir import write_atomic

if TYPE_CHECKING:
    from ganopt.sweeps.table import Summary

#: a job's verdict → its colour (Paul Tol's colour-blind-safe palette)
COLOURS = {
    "success": "#228833",
    "clean": "#4477aa",
    "missed": "#ccbb44",
    "alarm": "#ee7733",
    "failed": "#cc3311",
}


def write_figure(path: Path, summary: Summary, most: int = 4) -> None:
    """One panel per metric (the first ``most`` that have values)."""
    groups = summary.groups
    labels = [
        "\n".join(f"{k}={g.overrides.get(k, '')}" for k in summary.keys) or "(defaults)"
        for g in groups
    ]
    shown = [m for m in summary.metrics if any(g.values(m) for g in groups)][:most]
    fig = Figure(
        figsize=(max(6.0, 1.1 * len(groups) + 3), 3.2 * max(len(shown), 1)), layout="constrained"
    )
    rng = np.random.default_rng(0)  # the same jitter every time: the figure reproduces
    for i, metric in enumerate(shown or ["(no metrics)"], start=1):
        ax = fig.add_subplot(max(len(shown), 1), 1, i)
        for x, group in enumerate(groups):
            _group(ax, x, group, metric, summary.criterion, rng)
        ax.set_xticks(range(len(groups)), labels, fontsize=7)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        direction = evidence.BETTER.get(metric)
        ax.set_ylabel(
            metric
            + {"higher": " (higher is better)", "lower": " (lower is better)"}.get(direction, ""),
            fontsize=8,
        )
        ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=v) for v, c in COLOURS.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(COLOURS), fontsize=7)
    fig.suptitle("sweep summary: each seed a point (colour: verdict), mean and 95 % interval")
    write_atomic(path, lambda out: fig.savefig(out, format="png", dpi=110))


def _group(ax, x: int, group, metric: str, criterion, rng: np.random.Generator) -> None:
    points = [
        (job.metrics[metric], COLOURS[job.verdict(criterion)])
        for job in group.jobs
        if metric in job.metrics
    ]
    if not points:
        ax.text(
            x,
            0.5,
            "no value",
            ha="center",
            va="center",
            fontsize=7,
            color="0.4",
            transform=ax.get_xaxis_transform(),
        )
        return
    if len(points) < len(group.jobs):
        ax.text(
            x,
            0.02,
            f"{len(points)} of {len(group.jobs)} seeds with a value",
            ha="center",
            fontsize=6,
            color="0.4",
            transform=ax.get_xaxis_transform(),
        )
    values, colours = zip(*points, strict=True)
    jitter = rng.uniform(-0.12, 0.12, len(values))
    ax.scatter(x - 0.1 + jitter, values, c=colours, s=18, zorder=3, edgecolors="none")
    mean = evidence.mean(values)
    interval = evidence.bootstrap_interval(values)
    if interval is not None:
        ax.vlines(x + 0.2, *interval, color="0.2", linewidth=1.5)
    ax.hlines(mean, x + 0.1, x + 0.3, color="0.2", linewidth=2)
