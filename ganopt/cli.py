"""The Hydra entry point behind ``python train.py`` and ``ganopt-train``."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
from datetime import datetime
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganopt.build import build
from ganopt.checkpoint import find_checkpoint, load, run_dir_of
from ganopt.config import ConfigError, register_schema
from ganopt.distributed import World, world_from_env
from ganopt.distributed import init as init_distributed
from ganopt.distributed import shutdown as shutdown_distributed
from ganopt.logger import NullLogger, TensorBoardLogger
from ganopt.trainer import RunResult, Trainer

log = logging.getLogger("ganopt")

#: longest sweep job directory name (file systems allow 255 bytes); longer ones end in a hash
MAX_DIRNAME = 200


def config_dir() -> Path:
    """configs/ inside an installed wheel, else the source checkout's configs/."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


def safe_dirname(text: str) -> str:
    """A sweep job's overrides as one directory name: no '/', at most MAX_DIRNAME characters."""
    name = text.replace("/", "_").replace("\\", "_")
    if len(name) > MAX_DIRNAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: MAX_DIRNAME - 9]}~{digest}"
    return name


def resume_run_dir(resume: str | None, default: str) -> str:
    """hydra.run.dir: a resumed run continues in its original directory."""
    if resume is None:
        return default
    try:
        return str(run_dir_of(find_checkpoint(resume)))
    except FileNotFoundError:
        return default  # the task reports the missing checkpoint


def resume_hydra_subdir(resume: str | None) -> str:
    """hydra.output_subdir: a resume keeps the original run's .hydra/ files and records its
    own beside them."""
    if resume is None:
        return ".hydra"
    return f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}"


register_schema()
OmegaConf.register_new_resolver("ganopt.safe_dirname", safe_dirname, replace=True)
OmegaConf.register_new_resolver("ganopt.run_dir", resume_run_dir, replace=True)
OmegaConf.register_new_resolver(
    "ganopt.hydra_subdir", resume_hydra_subdir, replace=True, use_cache=True
)


def check_group_overrides(overrides: list[str]) -> None:
    """A config group takes an option by name. Hydra fails with a bare TypeError or ValueError
    and a traceback on anything else (``loss=[8,8]``, ``loss=null``, ``loss=5``); refuse those
    first, naming the override. Overrides Hydra cannot parse are left to Hydra's own message."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    problems = []
    for line in overrides:
        try:
            (override,) = parser.parse_overrides([line])
        except (OverrideParseException, ValueError):
            continue
        group = override.key_or_group.lstrip("+~").split("@")[0]
        if not (config_dir() / group).is_dir() or override.is_delete():
            continue
        try:
            choices = (
                list(override.sweep_iterator())
                if override.is_sweep_override()
                else [override.value()]
            )
        except Exception:  # an odd sweep (a range of floats...): Hydra reports it itself
            continue
        if not all(isinstance(choice, str) for choice in choices):
            options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
            problems.append(f"{line}: {group} takes one option by name: {', '.join(options)}")
    if problems:
        raise ConfigError(problems)


def with_original_overrides(argv: list[str]) -> list[str]:
    """``train.py resume=RUN [overrides]`` → the original run's overrides, then the given ones.

    A resumed run is the same experiment: it is composed from the overrides its run directory
    recorded (.hydra/overrides.yaml); what the command line repeats or adds wins."""
    given = [a for a in argv[1:] if a.startswith("resume=")]
    if not given or any(a in ("-m", "--multirun") for a in argv):
        return argv
    try:
        run_dir = run_dir_of(find_checkpoint(given[-1].split("=", 1)[1]))
        original = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (FileNotFoundError, OSError):
        return argv  # the task reports what is missing
    keys = {a.lstrip("+~").split("=", 1)[0] for a in argv[1:] if "=" in a}
    kept = [o for o in original if o.lstrip("+~").split("=", 1)[0] not in keys | {"resume"}]
    return [argv[0], *kept, *argv[1:]]


def _parse_value(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def run_hparams(cfg: DictConfig, status: str) -> dict[str, object]:
    """What the HParams dashboard compares: the config's main choices, every override, and
    how the run ended."""
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    hparams: dict[str, object] = {
        group: choices.get(group) or "none"
        for group in ("loss", "optim", "model", "data", "experiment")
    }
    hparams |= {
        "lr_G": cfg.optim.g.lr,
        "lr_D": cfg.optim.d.lr,
        "clip": cfg.optim.clip if cfg.optim.clip is not None else 0.0,
        "d_steps": cfg.trainer.d_steps,
        "batch_size": cfg.trainer.batch_size,
        "seed": cfg.trainer.seed,
    }
    for override in hydra_cfg.overrides.task:
        key, _, value = override.lstrip("+~").partition("=")
        hparams.setdefault(key, _parse_value(value))
    hparams["status"] = status
    return hparams


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


def with_distributed_overrides(argv: list[str], world: World, run_dir: str) -> list[str]:
    """Under torchrun every rank composes the same run: ``run_dir`` is rank 0's choice (the
    ranks' clocks may straddle a second), and rank 0 alone writes Hydra's files and the log."""
    if any(a in ("-m", "--multirun") for a in argv):
        sys.exit(
            "error: a sweep (-m) cannot run under torchrun; use hydra/launcher=slurm to "
            "run each job with its own GPUs"
        )
    argv = list(argv)
    if not any(a.startswith(("hydra.run.dir=", "resume=")) for a in argv[1:]):
        argv.append(f"hydra.run.dir={run_dir}")
    if not world.is_main:  # warnings and errors still reach the console
        argv += [
            "hydra.output_subdir=null",
            f"hydra.job_logging.handlers.file.filename={os.devnull}",
            "hydra.job_logging.root.level=WARNING",
            "hydra.hydra_logging.root.level=WARNING",
        ]
    return argv


def main() -> None:
    """The console entry point: ``python train.py ...``, ``ganopt-train ...`` and
    ``torchrun --nproc_per_node=N train.py ...``."""
    world = world_from_env()
    init_distributed(world)
    try:
        sys.argv = with_original_overrides(sys.argv)
        try:
            check_group_overrides([a for a in sys.argv[1:] if not a.startswith("-")])
        except ConfigError as e:
            log.error("%s", e)
            sys.exit(2)
        if world.distributed:
            run_dir = world.broadcast(f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}")
            sys.argv = with_distributed_overrides(sys.argv, world, run_dir)
        train()
    finally:
        shutdown_distributed()


def resume(trainer: Trainer, path: str) -> None:
    """Load a checkpoint into ``trainer``; ConfigError if it is missing or does not fit."""
    try:
        checkpoint = find_checkpoint(path)
        state = load(checkpoint, map_location=trainer.device)
        trainer.load_state_dict(state)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError([f"resume: {e}"]) from None
    if trainer.step >= trainer.settings.steps:
        raise ConfigError(
            [
                f"resume: the checkpoint is at step {trainer.step}, and "
                f"trainer.steps={trainer.settings.steps}: raise trainer.steps to go on"
            ]
        )
    log.info("resuming %s at step %d", checkpoint, trainer.step)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def train(cfg: DictConfig) -> float | None:
    """One training run. In a sweep, a job that is rejected or fails is logged and the sweep
    goes on; in a single run it exits non-zero."""
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)

    try:
        parts = build(cfg, world_from_env())
    except ConfigError as e:
        log.error("%s", e)
        if in_sweep:
            return objective(cfg, None)
        sys.exit(2)

    log.info("run directory: %s", run_dir)
    log.info(
        "device %s x %d process(es) | G %s | D %s | loss %s | clip %s",
        parts.device,
        parts.world.size,
        f"{sum(p.numel() for p in parts.G.parameters()):,} params",
        f"{sum(p.numel() for p in parts.D.parameters()):,} params",
        parts.loss,
        parts.clipper,
    )
    logger = TensorBoardLogger(run_dir) if parts.world.is_main else NullLogger()
    trainer = parts.make_trainer(run_dir, logger)
    if cfg.resume is not None:
        try:
            resume(trainer, cfg.resume)
        except ConfigError as e:
            log.error("%s", e)
            sys.exit(2)
        logger.continue_after(trainer.step)
    result = None
    try:
        result = trainer.fit()
    except Exception:
        if not in_sweep:
            raise
        log.exception("job failed (status recorded in metrics.json); the sweep goes on")
    finally:
        logger.hparams(run_hparams(cfg, result.status if result else "failed"))
        logger.close()
    if result is None:
        return objective(cfg, None)

    log.info(
        "%s at step %d: %s",
        result.status,
        result.step,
        ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float)),
    )
    if result.status == "interrupted":
        sys.exit(result.exit_code)
    return objective(cfg, result)
