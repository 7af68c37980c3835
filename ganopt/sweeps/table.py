"""What a sweep's summary shows of its groups: the table (markdown, terminal, CSV) and the
notes under it."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ganopt import evidence
from ganopt.rundir import write_atomic
from ganopt.sweeps.jobs import (
    Group,
    Job,
    default_criterion,
    group_by_config,
    metric_columns,
    read_sweep,
    varying_keys,
)


@dataclass
class Summary:
    """A sweep's groups and what the table shows of them."""

    groups: list[Group]
    metrics: list[str]
    criterion: dict[str, float | str] | None
    #: the overrides that differ between groups: the table's first columns
    keys: list[str]
    #: the metrics evaluated over training, with a better direction: a "best" column each
    tracked: list[str]
    #: each Fréchet distance's floor and sample counts, as the evaluator reported them
    floors: list[str]

    def best_group(self, metric: str) -> Group | None:
        """The group whose mean is best, where the metric has a better direction and one group
        is ahead of all others (a tie marks none)."""
        scored = [(m, g) for g in self.groups if (m := g.mean(metric)) is not None]
        if metric not in evidence.BETTER or len(scored) < 2:
            return None
        pick = max if evidence.BETTER[metric] == "higher" else min
        best = pick(m for m, _ in scored)
        leaders = [g for m, g in scored if m == best]
        return leaders[0] if len(leaders) == 1 else None


def summarize(
    sweep_dir: Path,
    objective: tuple[str, str] | None = None,
    criterion: Mapping[str, object] | None = None,
    only: list[str] | None = None,
) -> Summary:
    """Read and group a sweep; groups best first when an ``objective`` (metric, "minimize" or
    "maximize") is given, else in job order. ``criterion`` replaces the default one; ``only``
    keeps these metrics, in this order (all present ones by default)."""
    jobs = read_sweep(sweep_dir)
    groups = group_by_config(jobs)
    if objective is not None:
        groups.sort(key=lambda g: _sort_key(g, *objective))
    metrics = metric_columns(jobs)
    if only is not None:
        metrics = [m for m in only if m in metrics]
    tracked = [
        m
        for m in metrics
        if m in evidence.BETTER and any(m in row for j in jobs for row in j.history)
    ]
    chosen = dict(criterion) if criterion is not None else default_criterion(jobs)
    return Summary(groups, metrics, chosen, varying_keys(groups), tracked, _floors(jobs))


def _floors(jobs: list[Job]) -> list[str]:
    lines = []
    for job in jobs:
        for key, floor in job.constants.items():
            if not key.endswith("_floor"):
                continue
            name = key.removesuffix("_floor")
            n, n_real = (job.constants.get(f"{name}{s}") for s in ("_n", "_n_real"))
            line = (
                f"{name}: the real-vs-real floor is {floor:.3g} at n = {n:.0f} generated "
                f"against {n_real:.0f} real images (docs/evaluation.md)"
            )
            lines += [line] if line not in lines else []
    return lines


def _sort_key(group: Group, metric: str, direction: str) -> tuple[bool, float]:
    mean = group.mean(metric)
    if mean is None:
        return True, 0.0  # runs without the metric last
    return False, -mean if direction == "maximize" else mean


def _arrow(metric: str) -> str:
    return {"higher": " ↑", "lower": " ↓"}.get(evidence.BETTER.get(metric, ""), "")


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def _cell(values: list[float], digits: int) -> str:
    """The mean and its 95 % bootstrap interval; the mean alone for one seed; "–" for none."""
    mean = evidence.mean(values)
    if mean is None:
        return "–"
    interval = evidence.bootstrap_interval(values)
    if interval is None:
        return _number(mean, digits)
    low, high = interval
    return f"{_number(mean, digits)} [{_number(low, digits)}, {_number(high, digits)}]"


def header(summary: Summary) -> list[str]:
    columns = [*summary.keys, "seeds", "status", "verdict", "alarms"]
    if summary.criterion:
        columns += ["success", "steps to success"]
    for metric in summary.metrics:
        columns.append(metric + _arrow(metric))
        if metric in summary.tracked:
            columns.append(f"{metric} best{_arrow(metric)}")
    return columns


def rows(summary: Summary, digits: int, mark: str) -> list[list[str]]:
    """A row per group; the best group's mean of each metric inside ``mark`` ("**")."""
    best = {m: summary.best_group(m) for m in summary.metrics}
    table = []
    for g in summary.groups:
        row = [*(g.overrides.get(k, "") for k in summary.keys), str(len(g.jobs)), g.status]
        row += [g.verdict(summary.criterion), g.alarms]
        if summary.criterion:
            row += _success_cells(g, summary.criterion)
        for metric in summary.metrics:
            cell = _cell(g.values(metric), digits)
            row.append(f"{mark}{cell}{mark}" if best[metric] is g and mark else cell)
            if metric in summary.tracked:
                row.append(_cell(g.bests(metric), digits))
        table.append(row)
    return table


def _success_cells(group: Group, criterion: Mapping[str, object]) -> list[str]:
    wins, seeds = group.successes(criterion), len(group.jobs)
    steps = group.steps_to_success(criterion)
    when = f"{statistics.median(steps):g} ({len(steps)} of {seeds})" if steps else "–"
    return [f"{wins}/{seeds}", when]


def markdown_table(columns: list[str], table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def aligned_table(columns: list[str], table: list[list[str]], fixed: int, width: int = 100) -> str:
    """The table for a terminal: padded columns, the first ``fixed`` (configuration, seeds,
    status, verdict) always, then as many more as fit in ``width`` characters."""
    widths = [max(len(c) for c in column) for column in zip(columns, *table, strict=True)]
    shown = fixed
    while shown < len(columns) and sum(widths[: shown + 1]) + 2 * shown <= width:
        shown += 1
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line[:shown], widths, strict=False)).rstrip()
        for line in (columns, *table)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths[:shown]))
    if shown < len(columns):
        lines.append(f"({len(columns) - shown} more columns in summary.md and summary.csv)")
    return "\n".join(lines) + "\n"


def notes(summary: Summary) -> list[str]:
    """What the table's marks and columns mean, under it."""
    lines = [
        "Means over seeds with their 95 % bootstrap interval [low, high] "
        f"({evidence.RESAMPLES} resamples, seed {evidence.BOOTSTRAP_SEED}); ↑ higher is better, "
        "↓ lower; the best group's mean in bold; \"best\": each seed's best evaluation over "
        'training, averaged; "–": no value (never drawn as zero).'
    ]
    if summary.criterion:
        lines.append(
            f"Success: {evidence.describe(summary.criterion)} at the run's last evaluation; "
            "steps to success: the median step of the first evaluation that met it, over the "
            "seeds that did."
        )
    return lines + summary.floors


def write_csv(path: Path, summary: Summary) -> None:
    columns = [*summary.keys, "seeds", "status", "verdict", "alarms"]
    columns += ["successes", "success_rate", "steps_to_success_median"]
    for metric in summary.metrics:
        columns += [f"{metric}_{s}" for s in ("mean", "ci_low", "ci_high", "std")]
        columns += [f"{metric}_best_mean"] if metric in summary.tracked else []
    with io.StringIO(newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for g in summary.groups:
            writer.writerow(_csv_row(g, summary))
        text = f.getvalue()
    write_atomic(path, lambda out: out.write(text.encode()))


def _csv_row(g: Group, summary: Summary) -> list[object]:
    row: list[object] = [*(g.overrides.get(k, "") for k in summary.keys), len(g.jobs)]
    row += [g.status, g.verdict(summary.criterion), g.alarms]
    if summary.criterion:
        steps = g.steps_to_success(summary.criterion)
        wins = g.successes(summary.criterion)
        row += [wins, _g(wins / len(g.jobs)), _g(statistics.median(steps) if steps else None)]
    else:
        row += ["", "", ""]
    for metric in summary.metrics:
        values = g.values(metric)
        interval = evidence.bootstrap_interval(values) or (None, None)
        std = statistics.stdev(values) if len(values) > 1 else None
        row += [_g(evidence.mean(values)), *map(_g, interval), _g(std)]
        if metric in summary.tracked:
            row.append(_g(evidence.mean(g.bests(metric))))
    return row


def _g(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
