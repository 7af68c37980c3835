"""A sweep's jobs as ganopt wrote them (overrides, metrics.json, evaluations.csv), grouped
by configuration: jobs that differ only in ``trainer.seed`` are one group."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganopt import evidence
from ganopt.config import ConfigError
from ganopt.evaluation.history import read_history
from ganopt.run_record import recorded_settings

SEED_KEY = "trainer.seed"
#: metrics.json keys shown first when present; other numeric keys follow
PREFERRED = [
    *("modes", "hq_ratio", "kl", "fd_digits", "classes_covered", "class_kl", "fid"),
    *("precision", "recall", "density", "coverage", "overfit_gap", "ada_rt"),
    *("loss_D", "loss_G", "grad_norm_G", "grad_norm_D", "grad_signal_G", "steps_per_sec"),
]
#: bookkeeping and the run's own verdict, not results to average
SKIPPED = {"step", "checkpoint_step", "world_size", "peak_memory_mb", "success", "success_step"}
#: the evaluator's constants (docs/evaluation.md): a criterion may name them, no column shows them
CONSTANT_SUFFIXES = ("_floor", "_n", "_n_real")
CONSTANTS = {"n_modes", "digits_classifier_acc"}
#: metrics.json keys of the alarms that fired (null when they did not)
ALARMS = {"vanishing_step": "vanishing", "exploding_step": "exploding", "stalled_step": "stalled"}
SKIPPED |= {*ALARMS, "diverged_step"}  # shown as the alarms column and the status
#: a job's verdict: did it end cleanly, and then did it succeed, and did an alarm fire
VERDICTS = ("success", "missed", "clean", "alarm", "failed")


def is_constant(key: str) -> bool:
    return key in CONSTANTS or key.endswith(CONSTANT_SUFFIXES)


@dataclass
class Job:
    name: str
    overrides: dict[str, str]
    status: str
    metrics: dict[str, float]
    #: every key metrics.json reports, those without a value (kl: None) included
    reported: frozenset[str] = frozenset()
    constants: dict[str, float] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)
    #: its evaluations over training (evaluations.csv), each without undefined metrics
    history: list[dict[str, float]] = field(default_factory=list)

    def verdict(self, criterion: Mapping[str, object] | None) -> str:
        """failed (it did not end ok), success or missed (by the criterion), else alarm or
        clean (whether an alarm fired)."""
        if self.status != "ok":
            return "failed"
        if criterion:
            return "success" if self.succeeded(criterion) else "missed"
        return "alarm" if self.alarms else "clean"

    def succeeded(self, criterion: Mapping[str, object]) -> bool:
        return self.status == "ok" and evidence.meets(criterion, self.constants | self.metrics)

    def first_success(self, criterion: Mapping[str, object]) -> int | None:
        return evidence.first_success(criterion, self.history, self.constants)

    def best(self, metric: str) -> float | None:
        values = [row.get(metric) for row in self.history]
        return evidence.best_of([*values, self.metrics.get(metric)], metric)


@dataclass
class Group:
    overrides: dict[str, str]
    jobs: list[Job] = field(default_factory=list)

    @property
    def status(self) -> str:
        return counts(job.status for job in self.jobs)

    def verdict(self, criterion: Mapping[str, object] | None) -> str:
        return counts(job.verdict(criterion) for job in self.jobs)

    @property
    def alarms(self) -> str:
        return counts(alarm for job in self.jobs for alarm in job.alarms) or "–"

    def values(self, metric: str) -> list[float]:
        return [job.metrics[metric] for job in self.jobs if metric in job.metrics]

    def bests(self, metric: str) -> list[float]:
        return [b for job in self.jobs if (b := job.best(metric)) is not None]

    def mean(self, metric: str) -> float | None:
        return evidence.mean(self.values(metric))

    def successes(self, criterion: Mapping[str, object]) -> int:
        return sum(job.succeeded(criterion) for job in self.jobs)

    def steps_to_success(self, criterion: Mapping[str, object]) -> list[int]:
        return [s for job in self.jobs if (s := job.first_success(criterion)) is not None]


def counts(items: Any) -> str:
    counts = Counter(items)
    return ", ".join(f"{s}" if n == 1 else f"{s} x{n}" for s, n in sorted(counts.items()))


def job_number(path: Path) -> tuple[int, str]:
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (math.inf, path.name)


def read_job(job_dir: Path) -> Job:
    """A job's overrides, metrics.json and evaluations.csv. A file that cannot be read (edited
    or truncated by hand: ganopt writes each whole) is the job's status, and the summary goes
    on."""
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
    try:
        history = read_history(job_dir)
    except ValueError:
        return Job(job_dir.name, overrides, "unreadable evaluations.csv", {})
    numbers = {
        k: float(v)
        for k, v in raw.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    return Job(
        job_dir.name,
        overrides,
        str(raw.get("status", "unknown")),
        {k: v for k, v in numbers.items() if k not in SKIPPED and not is_constant(k)},
        frozenset(raw),
        {k: v for k, v in numbers.items() if is_constant(k)},
        [name for key, name in ALARMS.items() if raw.get(key) is not None],
        history,
    )


def read_sweep(sweep_dir: Path) -> list[Job]:
    """Every job directory (one with .hydra/overrides.yaml) directly under ``sweep_dir``."""
    dirs = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra" / "overrides.yaml").exists()]
    return [read_job(p) for p in sorted(dirs, key=job_number)]


def group_by_config(jobs: list[Job]) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for job in jobs:
        config = {k: v for k, v in job.overrides.items() if k != SEED_KEY}
        groups.setdefault(tuple(sorted(config.items())), Group(config)).jobs.append(job)
    return list(groups.values())


def varying_keys(groups: list[Group]) -> list[str]:
    keys = []
    for group in groups:
        keys += [k for k in group.overrides if k not in keys]
    if len(groups) > 1:
        keys = [k for k in keys if len({g.overrides.get(k) for g in groups}) > 1]
    return keys


def metric_columns(jobs: list[Job]) -> list[str]:
    present = {k for job in jobs for k in job.metrics}
    return [k for k in PREFERRED if k in present] + sorted(present - set(PREFERRED))


def default_criterion(jobs: list[Job]) -> dict[str, float | str] | None:
    """All modes at hq_ratio >= 0.8 where the jobs are on 2-D mixtures (they report
    n_modes); no criterion otherwise."""
    return dict(evidence.TOY_SUCCESS) if any("n_modes" in j.constants for j in jobs) else None
