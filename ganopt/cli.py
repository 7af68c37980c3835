"""The entry point behind ``python train.py`` and ``ganopt-train``: check the command line, let
Hydra compose it and create the run directory, build, train, exit with the run's status.

Bad input of any kind gets one line and exit code 2 before anything is written
(docs/reliability.md, "How a run ends")."""

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

from ganopt.components import Components
from ganopt.composition import (
    check_group_overrides,
    check_overrides,
    compose_config,
    config_dir,
    name_suffix,
    register,
)
from ganopt.config import ConfigError
from ganopt.distributed import World, world_from_env
from ganopt.distributed import init as init_distributed
from ganopt.distributed import shutdown as shutdown_distributed
from ganopt.hparams import run_hparams
from ganopt.logger import NullLogger, TensorBoardLogger
from ganopt.resume import path_value, resume, with_recorded_overrides
from ganopt.run_record import locate, recorded_checkpoint_step, recorded_status
from ganopt.rundir import (
    LOCK_FILE,
    check_run_dir,
    holds_a_run,
    lock,
    new_run_dir,
    release,
    remove_rejected,
    write_atomic,
)
from ganopt.setup.assembly import build, make_trainer
from ganopt.setup.checks import check
from ganopt.trainer import RunResult

log = logging.getLogger("ganopt")

#: Hydra flags after which no run happens (help, printing the config, shell completion)
NO_RUN_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc")
#: Hydra flags that take the next argument as their value
VALUED_FLAGS = ("-p", "--package", "-cp", "--config-path", "-cn", "--config-name")
VALUED_FLAGS += ("-cd", "--config-dir", "--experimental-rerun", "-c", "--cfg", "-sc")
VALUED_FLAGS += ("--shell-completion",)
#: --info's optional value
INFO_FLAGS, INFO_CHOICES = ("-i", "--info"), ("all", "config", "defaults", "defaults-tree")
INFO_CHOICES += ("plugins", "searchpath")
#: Hydra flags that read configs from elsewhere, or unpickle a config
REFUSED_FLAGS = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir")
REFUSED_FLAGS += ("--experimental-rerun",)
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
    """Everything that can be refused before Hydra creates or writes a run directory: a flag
    that loads configs or a pickle from elsewhere, an override that sets code, a ``resume=``
    whose record is not plain data or whose directory holds a symlink, a config that does not
    compose or check, a run directory that holds another run, cannot be written or is in use.
    Returns the argv for Hydra: the checked overrides and the run (or sweep) directory, which
    ganopt chooses itself. Raises ConfigError."""
    check_flags(argv)
    overrides = _overrides(argv)
    check_overrides(overrides)
    if any(a in NO_RUN_FLAGS or a.startswith(("--cfg=", "--info=")) for a in argv[1:]):
        return argv
    if any(a in ("-m", "--multirun") for a in argv):
        return _sweep(argv, overrides, world)
    run_dir, overrides = _run_dir_and_overrides(overrides, world)
    return [argv[0], *overrides, *run_dir_overrides(run_dir, overrides, world)]


def check_flags(argv: list[str]) -> None:
    """ganopt composes its own configs/ (no --config-path, --config-dir, --config-name) and
    continues a run with resume=, never by unpickling a config (--experimental-rerun)."""
    for arg in argv[1:]:
        flag = arg.split("=", 1)[0]
        if flag in REFUSED_FLAGS:
            raise ConfigError(
                [
                    f"{flag}: refused; ganopt reads its own configs/ only (add a preset under "
                    f"configs/experiment/), and resume=RUN continues a run"
                ]
            )


def _sweep(argv: list[str], overrides: list[str], world: World) -> list[str]:
    """A sweep writes into a new sweep directory: one given that already holds files is
    refused, and the default (multirun/DATE/TIME) is made new. Each job is checked when it
    runs."""
    if world.distributed:
        raise ConfigError(
            [
                "a sweep (-m) cannot run under torchrun; use hydra/launcher=slurm to run each "
                "job with its own GPUs"
            ]
        )
    if any(o.startswith("resume=") for o in overrides):
        raise ConfigError(["resume: continues one run; give it without -m, once per run"])
    check_group_overrides(overrides)
    given = [path_value(o) for o in overrides if o.startswith("hydra.sweep.dir=")]
    if given:
        sweep_dir = _given_dir("hydra.sweep.dir", given[-1])
        if holds_a_run(sweep_dir):
            raise ConfigError(
                [
                    f"hydra.sweep.dir: {sweep_dir} already holds files of another sweep; choose "
                    f"a new directory (resume= continues one run at a time)"
                ]
            )
        return argv
    sweep_dir = new_run_dir(Path(f"multirun/{datetime.now():%Y-%m-%d/%H-%M-%S}"))
    return [*argv, *quote_paths([f"hydra.sweep.dir={sweep_dir}"])]


def _run_dir_and_overrides(overrides: list[str], world: World) -> tuple[Path, list[str]]:
    """The run directory and the overrides of a single run, checked: a resumed run's directory
    and recorded overrides, a given hydra.run.dir that holds no other run, or a new directory
    named by the clock and the overrides (rank 0's choice under torchrun)."""
    given = [o for o in overrides if not o.startswith("hydra.run.dir=")]
    resumed = [path_value(o) for o in overrides if o.startswith("resume=")]
    run_dir = None
    if resumed and len(given) < len(overrides):
        raise ConfigError(["hydra.run.dir: resume= continues in the run's own directory; drop it"])
    if resumed:
        run_dir = locate(resumed[-1])[0]
        check_run_dir(run_dir)
        given = with_recorded_overrides(run_dir, given)
    cfg = compose_config(given)
    check(cfg, world)
    if resumed:
        check_more_steps(resumed[-1], cfg.trainer.steps)
    if run_dir is None:
        named = [path_value(o) for o in overrides if o.startswith("hydra.run.dir=")]
        if named:
            run_dir = _given_dir("hydra.run.dir", named[-1])
            if world.is_main and holds_a_run(run_dir):
                raise ConfigError(
                    [
                        f"hydra.run.dir: {run_dir} holds another run; resume={run_dir} continues "
                        f"it, or choose a new directory"
                    ]
                )
        elif world.is_main:
            suffix = name_suffix(
                ",".join(sorted(o for o in given if not o.startswith(NOT_IN_RUN_NAME)))
            )
            run_dir = new_run_dir(Path(f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}{suffix}"))
        if world.distributed:
            run_dir = Path(world.broadcast(str(run_dir) if world.is_main else ""))
    assert run_dir is not None
    if world.is_main:
        check_writable(run_dir)
    return run_dir, given


def check_more_steps(path: str, steps: int) -> None:
    """A finished run resumed without more steps, refused before Hydra starts: the step its
    checkpoint holds, as the run recorded it (a step_N.pt file's name, or metrics.json's
    checkpoint_step). Loading the checkpoint checks it again."""
    run_dir, checkpoint = locate(path)
    step = recorded_checkpoint_step(run_dir, checkpoint)
    unfinished = step == steps and recorded_status(run_dir) == "running"
    if step is not None and step >= steps and not unfinished:
        raise ConfigError(
            [
                f"resume: the checkpoint is at step {step}, and trainer.steps={steps}: raise "
                f"trainer.steps to go on"
            ]
        )


def _given_dir(key: str, value: str) -> Path:
    if value.strip() == "":
        raise ConfigError([f"{key}: must not be empty (it would write into .)"])
    path = Path(value).expanduser()
    for part in path.parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise ConfigError(
                [
                    f"{key}: a path component is {len(part.encode())} bytes, over the "
                    f"file system's {MAX_NAME_BYTES}: {part[:40]}..."
                ]
            )
    return path


def run_dir_overrides(run_dir: Path, overrides: list[str], world: World) -> list[str]:
    """Where Hydra writes: the run directory ganopt chose; a resume's record goes into
    .hydra/resumed_DATE_TIME beside the original's. Under torchrun rank 0 alone writes Hydra's
    files and log."""
    extra = quote_paths([f"hydra.run.dir={run_dir}"])
    if any(o.startswith("resume=") for o in overrides):
        extra.append(f"hydra.output_subdir=.hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}")
    if world.distributed and not world.is_main:  # warnings and errors still reach the console
        extra += [
            "hydra.output_subdir=null",
            f"hydra.job_logging.handlers.file.filename={os.devnull}",
            "hydra.job_logging.root.level=WARNING",
            "hydra.hydra_logging.root.level=WARNING",
        ]
    return extra


def _overrides(argv: list[str]) -> list[str]:
    overrides, previous = [], ""
    for arg in argv[1:]:
        valued = previous in VALUED_FLAGS or (previous in INFO_FLAGS and arg in INFO_CHOICES)
        if not valued and not arg.startswith("-"):
            overrides.append(arg)
        previous = "" if valued else arg
    return overrides


def check_writable(run_dir: Path) -> None:
    """Create and lock a run directory ganopt can write, or raise ConfigError."""
    try:
        lock(run_dir)  # creates it; held until the run ends, refused if another process has it
    except ConfigError as e:
        raise ConfigError([f"hydra.run.dir: {p}" for p in e.problems]) from None


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


def _other_files(run_dir: Path) -> str:
    """What a new run's directory holds beyond Hydra's record of this run and the lock (two
    sweep jobs given one hydra.sweep.subdir would share one)."""
    ours = {".hydra", f"{HydraConfig.get().job.name}.log", LOCK_FILE}
    return ", ".join(sorted(p.name for p in run_dir.iterdir() if p.name not in ours))


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def train(cfg: DictConfig) -> float | None:
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
