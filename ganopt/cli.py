"""The entry point behind ``python train.py`` and ``ganopt-train``: check the command line, let
Hydra compose it and create the run directory, build, train, exit with the run's status.

Bad input of any kind gets one line and exit code 2 before anything is written (README,
"How a run ends")."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganopt.build import Components, build, check_targets
from ganopt.composition import (
    check_group_overrides,
    compose_config,
    config_dir,
    name_suffix,
    register,
)
from ganopt.config import ConfigError, validate
from ganopt.distributed import World, world_from_env
from ganopt.distributed import init as init_distributed
from ganopt.distributed import shutdown as shutdown_distributed
from ganopt.hparams import run_hparams
from ganopt.logger import NullLogger, TensorBoardLogger
from ganopt.resume import locate, path_value, resume, with_recorded_overrides
from ganopt.rundir import lock, release, remove_rejected, write_atomic
from ganopt.trainer import RunResult

log = logging.getLogger("ganopt")

#: Hydra flags after which no run happens (help, printing the config, shell completion)
NO_RUN_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc")
#: Hydra flags that take the next argument as their value
VALUED_FLAGS = ("-p", "--package", "-cp", "--config-path", "-cn", "--config-name")
VALUED_FLAGS += ("-cd", "--config-dir", "--experimental-rerun")
#: overrides a run directory's name leaves out, as configs/config.yaml's override_dirname does
NOT_IN_RUN_NAME = ("hydra", "resume=", "trainer.progress=")
#: overrides whose value is a path, which may hold the '=' and ',' of a run directory's name
PATH_KEYS = ("resume=", "hydra.run.dir=", "hydra.sweep.dir=")
#: the longest name a file system takes for one path component, in bytes
MAX_NAME_BYTES = 255


def main() -> None:
    """``python train.py ...``, ``ganopt-train ...`` and ``torchrun ... train.py ...``."""
    register()
    world = world_from_env()
    try:
        init_distributed(world)
        try:
            sys.argv = preflight(quote_paths(sys.argv), world)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        train()
    except KeyboardInterrupt:  # a second Ctrl-C, or one during start-up: quietly
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        shutdown_distributed()
        # what there was to save is saved: a Ctrl-C while the interpreter shuts down would
        # only print a traceback from inside its exit handlers
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def quote_paths(argv: list[str]) -> list[str]:
    """Quote path values for Hydra, whose override grammar reads '=' and ',' as syntax, so that
    ``resume=outputs/DATE/TIME_loss=wgan,optim=sgd_clip`` works as typed."""
    quoted = []
    for arg in argv:
        key, _, value = arg.partition("=")
        needs_quotes = any(c in value for c in "=, ") and value[:1] not in ("'", '"')
        if arg.startswith(PATH_KEYS) and needs_quotes:
            arg = f"{key}='" + value.replace("'", "\\'") + "'"
        quoted.append(arg)
    return quoted


def preflight(argv: list[str], world: World) -> list[str]:
    """Everything that can be refused before Hydra creates a run directory: a ``resume=`` that
    names no run or replays code, a config that does not compose or validate, a run directory
    that cannot be written or is in use. Returns the argv to run (a resume's recorded
    overrides first). Raises ConfigError."""
    if any(a in NO_RUN_FLAGS or a.startswith(("--cfg=", "--info=")) for a in argv[1:]):
        return argv
    argv = with_recorded_overrides(argv)
    overrides = _overrides(argv)
    if any(a in ("-m", "--multirun") for a in argv):
        if world.distributed:
            raise ConfigError(
                [
                    "a sweep (-m) cannot run under torchrun; use hydra/launcher=slurm to run each "
                    "job with its own GPUs"
                ]
            )
        check_group_overrides(overrides)  # each job is checked when it runs
        return argv
    cfg = compose_config(overrides)
    validate(cfg)
    check_targets(cfg)
    run_dir = _known_run_dir(overrides, cfg)
    if run_dir is not None and world.is_main:
        check_writable(run_dir)
    if world.distributed:
        named = ",".join(sorted(o for o in overrides if not o.startswith(NOT_IN_RUN_NAME)))
        run_dir = world.broadcast(f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}{name_suffix(named)}")
        argv = with_distributed_overrides(argv, world, run_dir)
    return argv


def _overrides(argv: list[str]) -> list[str]:
    overrides, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in VALUED_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def _known_run_dir(overrides: list[str], cfg: DictConfig) -> Path | None:
    """The run directory, when it is known before Hydra picks it: a resumed run's, or one
    given as hydra.run.dir= (else Hydra names it by the clock)."""
    if cfg.resume is not None:
        return locate(cfg.resume)[0]
    given = [path_value(o) for o in overrides if o.startswith("hydra.run.dir=")]
    if not given:
        return None
    if given[-1].strip() == "":
        raise ConfigError(["hydra.run.dir: must not be empty (it would write into .)"])
    return Path(given[-1]).expanduser()


def check_writable(run_dir: Path) -> None:
    """Create and lock a run directory ganopt can write, or raise ConfigError."""
    for part in run_dir.parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise ConfigError(
                [
                    f"hydra.run.dir: a path component is {len(part.encode())} bytes, over the "
                    f"file system's {MAX_NAME_BYTES}: {part[:40]}..."
                ]
            )
    try:
        lock(run_dir)  # creates it; held until the run ends, refused if another process has it
    except ConfigError as e:
        raise ConfigError([f"hydra.run.dir: {p}" for p in e.problems]) from None


def with_distributed_overrides(argv: list[str], world: World, run_dir: str) -> list[str]:
    """Under torchrun every rank composes the same run: ``run_dir`` is rank 0's choice (the
    ranks' clocks may straddle a second), and rank 0 alone writes Hydra's files and log."""
    argv = list(argv)
    if not any(a.startswith(("hydra.run.dir=", "resume=")) for a in argv[1:]):
        argv += quote_paths([f"hydra.run.dir={run_dir}"])
    if not world.is_main:  # warnings and errors still reach the console
        argv += [
            "hydra.output_subdir=null",
            f"hydra.job_logging.handlers.file.filename={os.devnull}",
            "hydra.job_logging.root.level=WARNING",
            "hydra.hydra_logging.root.level=WARNING",
        ]
    return argv


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


def describe(parts: Components) -> None:
    """The run in one line: device, network sizes, loss, regularizers, clipping."""
    regularizers = ", ".join(map(repr, parts.regularizers)) or "none"
    log.info(
        "device %s x %d process(es) | G %s | D %s | loss %s | reg %s | clip %s",
        parts.device,
        parts.world.size,
        f"{sum(p.numel() for p in parts.G.parameters()):,} params",
        f"{sum(p.numel() for p in parts.D.parameters()):,} params",
        parts.loss,
        regularizers,
        parts.clipper,
    )


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


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def train(cfg: DictConfig) -> float | None:
    """One training run. In a sweep, a job that is rejected or fails is recorded and the sweep
    goes on; alone it exits non-zero."""
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    world = world_from_env()
    try:
        if world.is_main:
            lock(run_dir)
        parts = build(cfg, world)
        logger = TensorBoardLogger(run_dir) if parts.world.is_main else NullLogger()
        trainer = parts.make_trainer(run_dir, logger)
        if cfg.resume is not None:
            resume(trainer, cfg.resume)
            logger.continue_after(trainer.step)
    except ConfigError as e:
        return reject(e, cfg, run_dir, in_sweep)

    log.info("run directory: %s", run_dir)
    describe(parts)
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
    if result is None:
        return objective(cfg, None)

    log.info(
        "%s at step %d: %s",
        result.status,
        result.step,
        ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float)),
    )
    if result.status in ("interrupted", "failed") and not in_sweep:
        sys.exit(result.exit_code)
    return objective(cfg, result)
