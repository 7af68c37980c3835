"""A sweep's results as one table: jobs that differ only in ``trainer.seed`` are a group, shown
with the evidence across its seeds (ganopt/evidence.py): the mean and its 95 % bootstrap
interval, the best value over training, the success rate and the step of first success. A run's
status (did it end cleanly) is kept apart from its verdict (did it succeed, did an alarm fire).

``scripts/summarize.py SWEEP_DIR`` runs it by hand; :class:`SummarizeCallback` runs it at the
end of every multirun. Writes ``summary.md``, ``summary.csv`` and ``summary.png`` into the
sweep directory (docs/sweeps.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ganopt.config import ConfigError
from ganopt.rundir import write_atomic

log = logging.getLogger(__name__)

__all__ = ["SummarizeCallback", "read_sweep", "summarize_sweep", "write_hparams_experiment"]


def __getattr__(name: str) -> object:
    """``read_sweep``, imported when asked for. Every run imports this package for its callback
    (configs/config.yaml), so what reads and draws a sweep (TensorBoard, matplotlib, the
    evaluation stack) is imported where a sweep is summarized."""
    if name == "read_sweep":
        from ganopt.sweeps.jobs import read_sweep

        return read_sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def summarize_sweep(
    sweep_dir: str | Path,
    objective: tuple[str, str] | None = None,
    criterion: Mapping[str, object] | None = None,
    only: list[str] | None = None,
) -> tuple[str, str]:
    """Write summary.md, summary.csv and summary.png into ``sweep_dir`` (every column); return
    the markdown table with the notes under it (what summary.md holds below its title) and the
    terminal's table (aligned, at most 100 columns wide)."""
    from ganopt.sweeps.figure import write_figure
    from ganopt.sweeps.table import (
        aligned_table,
        header,
        markdown_table,
        notes,
        rows,
        summarize,
        write_csv,
    )

    sweep_dir = Path(sweep_dir)
    summary = summarize(sweep_dir, objective, criterion, only)
    if not summary.groups:
        raise FileNotFoundError(f"no job directories (with .hydra/overrides.yaml) in {sweep_dir}")
    columns = header(summary)
    table = markdown_table(columns, rows(summary, 4, "**"))
    markdown = table + "".join(f"\n{n}\n" for n in notes(summary))
    text = f"# Sweep {sweep_dir}\n\n{markdown}"
    write_atomic(sweep_dir / "summary.md", lambda out: out.write(text.encode()))
    write_csv(sweep_dir / "summary.csv", summary)
    write_figure(sweep_dir / "summary.png", summary)
    fixed = len(summary.keys) + 4
    terminal = aligned_table(columns, rows(summary, 3, ""), fixed) + "".join(
        f"{line}\n" for line in summary.floors
    )
    return markdown, terminal


def write_hparams_experiment(sweep_dir: Path) -> None:
    """The sweep's HParams experiment, as an event file at the sweep's root (TensorBoard's run
    "."): what differs across the jobs first, the metrics researchers compare first."""
    from torch.utils.tensorboard import SummaryWriter

    from ganopt.hparams import experiment_summary, job_hparams
    from ganopt.sweeps.jobs import job_number, read_job

    jobs = [
        (job_dir, read_job(job_dir))
        for job_dir in sorted(sweep_dir.iterdir(), key=job_number)
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
        success = config.get("objective", {}).get("success")
        criterion = OmegaConf.to_container(success) if success else None
        try:
            _, table = summarize_sweep(sweep_dir, objective, criterion)
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
