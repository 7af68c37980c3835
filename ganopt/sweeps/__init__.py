"""A sweep's results as one table: jobs that differ only in ``trainer.seed`` are grouped into
mean ± std; failed, diverged and rejected jobs keep their status.

``scripts/summarize.py SWEEP_DIR`` runs it by hand; :class:`SummarizeCallback` runs it at the
end of every multirun. Writes ``summary.md``, ``summary.csv`` and ``summary.png`` into the
sweep directory.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from matplotlib.figure import Figure
from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

from ganopt.config import ConfigError
from ganopt.hparams import experiment_summary, job_hparams
from ganopt.run_record import recorded_settings
from ganopt.rundir import write_atomic

log = logging.getLogger(__name__)

SEED_KEY = "trainer.seed"
#: metrics.json keys shown first when present; other numeric keys follow
PREFERRED = [
    "modes",
    "hq_ratio",
    "kl",
    "fd_digits",
    "classes_covered",
    "class_kl",
    "fid",
    "loss_D",
    "loss_G",
    "grad_norm_G",
    "grad_norm_D",
    "grad_signal_G",
    "steps_per_sec",
]
#: bookkeeping, not results
SKIPPED = {"step", "checkpoint_step", "world_size", "digits_classifier_acc", "peak_memory_mb"}


@dataclass
class Job:
    name: str
    overrides: dict[str, str]
    status: str
    metrics: dict[str, float]
    #: every key metrics.json reports, those without a value (kl: None) included
    reported: frozenset[str] = frozenset()


@dataclass
class Group:
    overrides: dict[str, str]
    jobs: list[Job] = field(default_factory=list)

    @property
    def status(self) -> str:
        counts = Counter(job.status for job in self.jobs)
        return ", ".join(f"{s}" if n == 1 else f"{s} x{n}" for s, n in sorted(counts.items()))

    def values(self, metric: str) -> list[float]:
        return [job.metrics[metric] for job in self.jobs if metric in job.metrics]


def _job_number(path: Path) -> tuple[int, str]:
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (math.inf, path.name)


def read_job(job_dir: Path) -> Job:
    """A job's overrides and metrics.json. A file that cannot be read (edited or truncated by
    hand: ganopt writes both whole) is the job's status, and the summary goes on."""
    try:
        overrides = recorded_settings(job_dir)
    except ConfigError:
        return Job(job_dir.name, {}, f"unreadable {job_dir.name}/.hydra/overrides.yaml", {})
    metrics_file = job_dir / "metrics.json"
    try:
        raw: dict[str, Any] = json.loads(metrics_file.read_text())
        if not isinstance(raw, dict):
            raise ValueError("not an object")
    except FileNotFoundError:  # killed before it could write (a rejected job records its status)
        return Job(job_dir.name, overrides, "no metrics.json", {})
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError too
        return Job(job_dir.name, overrides, "unreadable metrics.json", {})
    metrics = {
        k: float(v)
        for k, v in raw.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SKIPPED
    }
    return Job(job_dir.name, overrides, str(raw.get("status", "unknown")), metrics, frozenset(raw))


def read_sweep(sweep_dir: Path) -> list[Job]:
    """Every job directory (one with .hydra/overrides.yaml) directly under ``sweep_dir``."""
    dirs = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra" / "overrides.yaml").exists()]
    return [read_job(p) for p in sorted(dirs, key=_job_number)]


def group_by_config(jobs: list[Job]) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for job in jobs:
        config = {k: v for k, v in job.overrides.items() if k != SEED_KEY}
        groups.setdefault(tuple(sorted(config.items())), Group(config)).jobs.append(job)
    return list(groups.values())


def _varying_keys(groups: list[Group]) -> list[str]:
    keys = []
    for group in groups:
        keys += [k for k in group.overrides if k not in keys]
    if len(groups) > 1:
        keys = [k for k in keys if len({g.overrides.get(k) for g in groups}) > 1]
    return keys


def _metric_columns(jobs: list[Job]) -> list[str]:
    present = {k for job in jobs for k in job.metrics}
    return [k for k in PREFERRED if k in present] + sorted(present - set(PREFERRED))


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None, None
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return statistics.fmean(finite), std


def _cell(values: list[float], digits: int = 4) -> str:
    mean, std = _mean_std(values)
    if mean is None:
        return "–"
    return f"{mean:.{digits}g}" if std is None else f"{mean:.{digits}g} ± {std:.2g}"


def _sort_key(group: Group, metric: str, direction: str) -> tuple[bool, float]:
    mean, _ = _mean_std(group.values(metric))
    if mean is None:
        return True, 0.0  # runs without the metric last
    return False, -mean if direction == "maximize" else mean


def summary_rows(
    sweep_dir: Path, objective: tuple[str, str] | None = None, digits: int = 4
) -> tuple[list[str], list[list[str]], list[Group], list[str]]:
    """Header and rows of the table (means to ``digits`` significant digits), the groups and
    the metric columns; rows best first when an ``objective`` (metric, "minimize" or
    "maximize") is given, else in job order."""
    jobs = read_sweep(sweep_dir)
    groups = group_by_config(jobs)
    if objective is not None:
        groups.sort(key=lambda g: _sort_key(g, *objective))
    keys, metrics = _varying_keys(groups), _metric_columns(jobs)
    header = [*keys, "seeds", "status", *metrics]
    rows = [
        [
            *(g.overrides.get(k, "") for k in keys),
            str(len(g.jobs)),
            g.status,
            *(_cell(g.values(m), digits) for m in metrics),
        ]
        for g in groups
    ]
    return header, rows, groups, metrics


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def aligned_table(header: list[str], rows: list[list[str]], fixed: int, width: int = 100) -> str:
    """The table for a terminal: padded columns, the first ``fixed`` (configuration, seeds,
    status) always, then as many metric columns as fit in ``width`` characters."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]
    shown = fixed
    while shown < len(header) and sum(widths[: shown + 1]) + 2 * shown <= width:
        shown += 1
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line[:shown], widths, strict=False)).rstrip()
        for line in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths[:shown]))
    if shown < len(header):
        lines.append(f"({len(header) - shown} more columns in summary.md and summary.csv)")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, groups: list[Group], metrics: list[str]) -> None:
    keys = _varying_keys(groups)
    with io.StringIO(newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                *keys,
                "seeds",
                "status",
                *(f"{m}_{stat}" for m in metrics for stat in ("mean", "std")),
            ]
        )
        for g in groups:
            stats = [_mean_std(g.values(m)) for m in metrics]
            writer.writerow(
                [
                    *(g.overrides.get(k, "") for k in keys),
                    len(g.jobs),
                    g.status,
                    *("" if v is None else f"{v:.6g}" for pair in stats for v in pair),
                ]
            )
        text = f.getvalue()
    write_atomic(path, lambda out: out.write(text.encode()))


def write_plot(path: Path, groups: list[Group], metrics: list[str], most: int = 4) -> None:
    """One bar chart per metric (the first ``most``), a bar per configuration, seed std as
    error bars."""
    keys = _varying_keys(groups)
    labels = [
        "\n".join(f"{k}={g.overrides.get(k, '')}" for k in keys) or "(defaults)" for g in groups
    ]
    shown = [m for m in metrics if any(g.values(m) for g in groups)][:most] or ["(no metrics)"]
    fig = Figure(
        figsize=(max(6.0, 1.1 * len(groups) * len(shown) / 2 + 3), 3.6 * len(shown)),
        layout="constrained",
    )
    for i, metric in enumerate(shown, start=1):
        ax = fig.add_subplot(len(shown), 1, i)
        stats = [_mean_std(g.values(metric)) for g in groups]
        means = [m if m is not None else 0.0 for m, _ in stats]
        errors = [s or 0.0 for _, s in stats]
        colors = ["#4477aa" if all(j.status == "ok" for j in g.jobs) else "#cc6677" for g in groups]
        ax.bar(range(len(groups)), means, yerr=errors, color=colors, capsize=3)
        ax.set_xticks(range(len(groups)), labels, fontsize=7)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("sweep summary (mean ± std over seeds; red: not all runs ok)")
    write_atomic(path, lambda out: fig.savefig(out, format="png", dpi=110))


def summarize_sweep(
    sweep_dir: str | Path, objective: tuple[str, str] | None = None
) -> tuple[str, str]:
    """Write summary.md, summary.csv and summary.png into ``sweep_dir`` (every column); return
    the markdown table and the terminal's (aligned, at most 100 columns wide)."""
    sweep_dir = Path(sweep_dir)
    header, rows, groups, metrics = summary_rows(sweep_dir, objective)
    if not groups:
        raise FileNotFoundError(f"no job directories (with .hydra/overrides.yaml) in {sweep_dir}")
    table = markdown_table(header, rows)
    text = f"# Sweep {sweep_dir}\n\n{table}"
    write_atomic(sweep_dir / "summary.md", lambda out: out.write(text.encode()))
    write_csv(sweep_dir / "summary.csv", groups, metrics)
    write_plot(sweep_dir / "summary.png", groups, metrics)
    _, short_rows, _, _ = summary_rows(sweep_dir, objective, digits=3)
    return table, aligned_table(header, short_rows, fixed=len(header) - len(metrics))


def write_hparams_experiment(sweep_dir: Path) -> None:
    """The sweep's HParams experiment, as an event file at the sweep's root (TensorBoard's run
    "."): what differs across the jobs first, the metrics researchers compare first."""
    jobs = [
        (job_dir, read_job(job_dir))
        for job_dir in sorted(sweep_dir.iterdir(), key=_job_number)
        if all((job_dir / ".hydra" / f).exists() for f in ("hydra.yaml", "config.yaml"))
    ]
    runs = []
    for job_dir, job in jobs:
        try:
            runs.append(job_hparams(job_dir, job.status))
        except ConfigError:  # its record was edited by hand: the job is in the table, not here
            continue
    metric_keys = set().union(*(job.reported for _, job in jobs))
    writer = SummaryWriter(log_dir=str(sweep_dir))
    try:
        writer.file_writer.add_summary(experiment_summary(runs, metric_keys))
    finally:
        writer.close()


class SummarizeCallback(Callback):
    """Summarizes every multirun when it ends (configured in configs/config.yaml)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric = config.get("objective", {}).get("metric")
        objective = (metric, config.objective.direction) if metric else None
        try:
            _, table = summarize_sweep(sweep_dir, objective)
        except FileNotFoundError as e:  # no job left a record: nothing to summarize
            log.warning("no sweep summary: %s", e)
            return
        except Exception:  # a summary must never turn a finished sweep into a failure
            log.exception("could not summarize %s", sweep_dir)
            return
        try:
            write_hparams_experiment(sweep_dir)
        except Exception:
            log.exception("could not write the HParams summary into %s", sweep_dir)
        log.info("sweep summary: %s (and summary.csv, summary.png)", sweep_dir / "summary.md")
        print(table, flush=True)  # the sweep's result, on stdout, best first with an objective
