"""The entry point behind ``python train.py`` and ``ganopt-train``: check the command line, let
Hydra compose it and create the run directory, build, train, exit with the run's status.

Bad input of any kind gets one line and exit code 2 before anything is written
(docs/reliability.md, "How a run ends"), and before torch loads where the check needs none: the
training stack (torch, TensorBoard) is imported once the command line has passed."""

from __future__ import annotations

import importlib
import json
import logging
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra._internal.hydra import Hydra
from hydra._internal.utils import run_and_report
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganopt.composition import RunComposer, config_dir, register
from ganopt.config import ConfigError
from ganopt.distributed import init as init_distributed
from ganopt.distributed import shutdown as shutdown_distributed
from ganopt.distributed import world_from_env
from ganopt.launch import preflight, quote_paths, runs, single_run
from ganopt.rundir import (
    LOCK_FILE,
    lock,
    release,
    remove_rejected,
    write_atomic,
)
from ganopt.stopping import ctrl_c_held

if TYPE_CHECKING:
    from ganopt.components import Components
    from ganopt.logger import TensorBoardLogger
    from ganopt.trainer import RunResult, Trainer

log = logging.getLogger("ganopt")
#: what every run imports beyond the command line's check, loaded once that check has passed
TRAINING_STACK = ("ganopt.setup.assembly", "ganopt.logger", "ganopt.hparams", "ganopt.resume")


def main() -> None:
    """``python train.py ...``, ``ganopt-train ...`` and ``torchrun ... train.py ...``."""
    register()
    world = world_from_env()
    composed = RunComposer()
    try:
        init_distributed(world)
        try:
            sys.argv = preflight(quote_paths(sys.argv), world, composed)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        with ctrl_c_held():
            for module in TRAINING_STACK if runs(sys.argv) else ():
                importlib.import_module(module)
        if single_run(sys.argv):
            run_once(composed, sys.argv[1:])
        else:
            train()
    except KeyboardInterrupt:  # a second Ctrl-C, or one during start-up: quietly
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        shutdown_distributed()
        # what there was to save is saved: a Ctrl-C while the interpreter shuts down would
        # only print a traceback from inside its exit handlers
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def objective(cfg: DictConfig, result: RunResult | None) -> float | None:
    """The configured metric of a finished run, the worst value for a run that did not finish
    well, or None when no objective is configured."""
    metric = cfg.objective.metric
    if metric is None:
        return None
    worst = math.inf if cfg.objective.direction == "minimize" else -math.inf
    value = result.metrics.get(metric) if result is not None and result.status == "ok" else None
    if result is not None and result.status == "ok" and value is None:
        log.warning(
            "objective.metric %r is not among this run's metrics: %s",
            metric,
            ", ".join(k for k, v in result.metrics.items() if isinstance(v, float)),
        )
    return float(value) if isinstance(value, (int, float)) else worst


def describe(parts: Components, cfg: DictConfig) -> None:
    """The run in one line: device, network sizes, and each component as the config chose it
    (``reg r1(gamma=1.0, every=1)``), not as the code spells it; on a CPU, a line with its
    threads and why; for images, a line with how many train and how many are held out."""
    chosen = {key: _as_set(cfg, key) for key in ("loss", "reg", "reg2", "reg3", "optim.d")}
    if OmegaConf.select(cfg, "aug.name", default="none") != "none":
        chosen["aug"] = _as_set(cfg, "aug")
    chosen["update"] = cfg.trainer["update"]  # the order of the players' steps
    if parts.lookahead is not None:
        chosen["optim"] = repr(parts.lookahead)
    log.info(
        "device %s x %d process(es) | G %s | D %s | %s | clip %s",
        parts.device,
        parts.world.size,
        f"{sum(p.numel() for p in parts.G.parameters()):,} params",
        f"{sum(p.numel() for p in parts.D.parameters()):,} params",
        " | ".join(f"{key} {text}" for key, text in chosen.items() if text),
        cfg.optim.clip,
    )
    if parts.threads:
        log.info("%s", parts.threads)
    heldout = getattr(parts.data, "heldout", None)
    if heldout is not None:  # image data: what D trains on and what it never sees
        log.info(
            "data %s: %d images train, %d held out (data.holdout, data.limit)",
            cfg.data.name,
            len(parts.data),
            len(heldout),
        )


def _as_set(cfg: DictConfig, key: str) -> str:
    node = OmegaConf.select(cfg, key)
    if node is None:
        return ""
    values = OmegaConf.to_container(node, resolve=True)
    arguments = ", ".join(f"{k}={v}" for k, v in values.items() if k != "name")
    return f"{values.get('name')}({arguments})"


def reject(error: ConfigError, cfg: DictConfig, run_dir: Path, in_sweep: bool) -> float | None:
    """A config refused in the task: one line; in a sweep the job's status is recorded and the
    sweep goes on, alone the run leaves nothing behind and exits 2."""
    log.error("%s", error)
    if in_sweep:
        metrics = {"status": "rejected", "error": str(error)}
        write_atomic(
            run_dir / "metrics.json", lambda f: f.write(json.dumps(metrics, indent=2).encode())
        )
        release(run_dir)
        return objective(cfg, None)
    subdir = HydraConfig.get().output_subdir
    remove_rejected(run_dir, run_dir / subdir if subdir else None)
    sys.exit(2)


def _other_files(run_dir: Path) -> str:
    """What a new run's directory holds beyond Hydra's record of this run and the lock (two
    sweep jobs given one hydra.sweep.subdir would share one)."""
    ours = {".hydra", f"{HydraConfig.get().job.name}.log", LOCK_FILE}
    return ", ".join(sorted(p.name for p in run_dir.iterdir() if p.name not in ours))


def run_once(composed: RunComposer, overrides: list[str]) -> None:
    """A single run, as ``hydra.main`` runs one (its run directory, record and logging, through
    Hydra's own run), with the config that preflight composed and checked: not composed again,
    nor once more only to read the mode of the run."""
    hydra_ = Hydra(task_name="train", config_loader=composed)
    GlobalHydra.instance().initialize(hydra_)
    try:
        run_and_report(lambda: hydra_.run("config", run, overrides))
    finally:
        GlobalHydra.instance().clear()


def run(cfg: DictConfig) -> float | None:
    """One training run. In a sweep, a job that is rejected or fails is recorded and the sweep
    goes on; alone it exits non-zero."""
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    world = world_from_env()
    if world.is_main and cfg.resume is None and (other := _other_files(run_dir)):
        log.error("%s holds files of another run (%s); refused, nothing written", run_dir, other)
        if in_sweep:
            return objective(cfg, None)
        sys.exit(2)
    from ganopt.logger import NullLogger, TensorBoardLogger
    from ganopt.resume import resume
    from ganopt.setup.assembly import build, make_trainer

    try:
        if world.is_main:
            lock(run_dir)
        parts = build(cfg, world)
        logger = TensorBoardLogger(run_dir) if parts.world.is_main else NullLogger()
        trainer = make_trainer(parts, run_dir, logger)
        if cfg.resume is not None:
            resume(trainer, cfg.resume)
            logger.continue_after(trainer.step)
    except ConfigError as e:
        return reject(e, cfg, run_dir, in_sweep)
    trainer.recorder.start_drawing()  # train.py's main module is guarded
    log.info("run directory: %s", run_dir)
    describe(parts, cfg)
    result = _fit(trainer, logger, cfg, run_dir, in_sweep)
    if result is None:
        return objective(cfg, None)
    if result.status in ("interrupted", "failed") and not in_sweep:
        sys.exit(result.exit_code)
    return objective(cfg, result)


#: every other command line (a sweep, --help, --cfg, --info): Hydra's own main
train = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(run)


def _fit(
    trainer: Trainer, logger: TensorBoardLogger, cfg: DictConfig, run_dir: Path, in_sweep: bool
) -> RunResult | None:
    """Train, then record the run in TensorBoard's HParams and say how it ended, with the
    command that continues it where it can be continued."""
    from ganopt.hparams import run_hparams

    result = None
    try:
        result = trainer.fit()
    except Exception:
        if not in_sweep:
            raise
        log.exception("job failed (status recorded in metrics.json); the sweep goes on")
    finally:
        hydra_cfg = HydraConfig.get()
        status = result.status if result else "failed"
        container = OmegaConf.to_container(cfg, resolve=True)
        choices, overrides = hydra_cfg.runtime.choices, hydra_cfg.overrides.task
        logger.hparams(run_hparams(container, choices, overrides, status))
        logger.close()
        release(run_dir)
    if result is not None:
        measured = (f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float))
        log.info("%s at step %d: %s", result.status, result.step, ", ".join(measured))
        if result.status == "interrupted" and trainer.checkpoints.saved_step is not None:
            log.info("continue it with: python train.py %s", quote_paths([f"resume={run_dir}"])[0])
    return result
