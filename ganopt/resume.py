"""Continuing a run: which directory a ``resume=`` names, which overrides it replays, and how
its checkpoint is loaded. (README, "Resuming a run".)

A run directory is data, not code: the overrides it recorded are replayed only if they set
plain values, and its checkpoint is loaded with the weights-only unpickler.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ganopt.checkpoint import LAST, CheckpointError, load
from ganopt.config import ConfigError

if TYPE_CHECKING:
    from ganopt.trainer import Trainer

log = logging.getLogger(__name__)

#: override keys a recorded run may not replay: they choose code, not values
CODE_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")


def locate(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint) of ``resume=PATH``: a run directory (its
    checkpoints/last.pt) or a checkpoint file inside ``<run>/checkpoints/``. Any other file
    names no run to continue in, and is refused. Raises ConfigError."""
    path = Path(path).expanduser()
    if path.is_dir():
        run_dir, checkpoint = path, path / "checkpoints" / LAST
        if not checkpoint.is_file():
            raise ConfigError([f"resume: no checkpoint at {checkpoint}"])
    elif path.is_file():
        checkpoint, run_dir = path, path.resolve().parent.parent
        if path.resolve().parent.name != "checkpoints":
            raise ConfigError(
                [
                    f"resume: {path} is not inside a run's checkpoints/ folder, so it names no "
                    f"run to continue; give the run directory or <run>/checkpoints/<file>"
                ]
            )
    else:
        raise ConfigError([f"resume: {path} does not exist"])
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        raise ConfigError([f"resume: {run_dir} is not a run directory (no .hydra/overrides.yaml)"])
    return run_dir, checkpoint


def recorded_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was started with (.hydra/overrides.yaml), refusing a file that is not
    a YAML list of strings or that sets code (a ``_target_``...) or Hydra's own settings."""
    source = run_dir / ".hydra" / "overrides.yaml"
    try:
        overrides = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        reason = " ".join(str(e).split())[:160]
        raise ConfigError([f"resume: {source} is not readable YAML ({reason})"]) from None
    overrides = [] if overrides is None else overrides
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError([f"resume: {source} must be a list of override strings"])
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if any(part in CODE_KEYS for part in key.split(".")) or key.startswith("hydra"):
            raise ConfigError(
                [
                    f"resume: {source} sets {key}: a run directory may set values, not choose "
                    f"code or Hydra's settings; refused"
                ]
            )
    return overrides


def path_value(override: str) -> str:
    """The path in ``key=PATH`` or ``key='PATH'`` (quoted for Hydra's grammar)."""
    value = override.split("=", 1)[1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].replace(f"\\{value[0]}", value[0])
    return value


def with_recorded_overrides(argv: list[str]) -> list[str]:
    """``train.py resume=RUN [overrides]`` → RUN's recorded overrides, then the given ones.

    A resumed run is the same experiment: what the command line repeats or adds wins."""
    given = [a for a in argv[1:] if a.startswith("resume=")]
    if not given or any(a in ("-m", "--multirun") for a in argv):
        return argv
    run_dir, _ = locate(path_value(given[-1]))
    keys = {a.lstrip("+~").split("=", 1)[0] for a in argv[1:] if "=" in a}
    kept = [
        o
        for o in recorded_overrides(run_dir)
        if o.lstrip("+~").split("=", 1)[0] not in keys | {"resume"}
    ]
    return [argv[0], *kept, *argv[1:]]


def run_dir_resolver(resume: str | None, default: str) -> str:
    """hydra.run.dir: a resumed run continues in its original directory. (main() has already
    refused a ``resume=`` that names no run.)"""
    if resume is None:
        return default
    try:
        return str(locate(resume)[0])
    except ConfigError:
        return default


def hydra_subdir_resolver(resume: str | None) -> str:
    """hydra.output_subdir: a resume keeps the original run's .hydra/ files and records its own
    beside them."""
    if resume is None:
        return ".hydra"
    return f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}"


def resume(trainer: Trainer, path: str) -> None:
    """Load ``resume=``'s checkpoint into ``trainer``. ConfigError if it cannot be read, does not
    fit this config, or is already at trainer.steps."""
    _, checkpoint = locate(path)
    try:
        trainer.state.load_state_dict(load(checkpoint, map_location=trainer.device))
    except (CheckpointError, ValueError) as e:
        raise ConfigError([f"resume: {e}"]) from None
    if trainer.step >= trainer.settings.steps:
        raise ConfigError(
            [
                f"resume: the checkpoint is at step {trainer.step}, and "
                f"trainer.steps={trainer.settings.steps}: raise trainer.steps to go on"
            ]
        )
    log.info("resuming %s at step %d", checkpoint, trainer.step)
