"""Continuing a run: the overrides a ``resume=`` replays and how its checkpoint is loaded
(docs, "Reliability"). The run directory is read through ganopt/run_record.py's checked
loader; its checkpoint is verified against its digest and loaded with the weights-only
unpickler."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ganopt.config import ConfigError
from ganopt.run_record import locate, recorded_overrides, recorded_status

if TYPE_CHECKING:
    from ganopt.trainer import Trainer

log = logging.getLogger(__name__)


def path_value(override: str) -> str:
    """The path in ``key=PATH`` or ``key='PATH'`` (quoted for Hydra's grammar)."""
    value = override.split("=", 1)[1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].replace(f"\\{value[0]}", value[0])
    return value


def with_recorded_overrides(run_dir: Path, given: list[str]) -> list[str]:
    """RUN's recorded overrides, then the given ones: a resumed run is the same experiment, and
    what the command line repeats or adds wins."""
    keys = {o.lstrip("+~").split("=", 1)[0] for o in given if "=" in o}
    kept = [o for o in recorded_overrides(run_dir) if o.lstrip("+").split("=", 1)[0] not in keys]
    return [*kept, *given]


def resume(trainer: Trainer, path: str) -> None:
    """Load ``resume=``'s checkpoint into ``trainer``. ConfigError if it cannot be read, does not
    fit this config, or is already at trainer.steps."""
    from ganopt.checkpoint import CheckpointError, load  # torch: the run has started

    run_dir, checkpoint = locate(path)
    try:
        trainer.state.load_state_dict(load(checkpoint, map_location=trainer.device))
    except (CheckpointError, ValueError) as e:
        raise ConfigError([f"resume: {e}"]) from None
    steps = trainer.settings.steps
    # a run killed after its final checkpoint, before it wrote how it ended, still says
    # "running"; its lock is ours now, so nothing runs it: it is finished here
    unfinished = trainer.step == steps and recorded_status(run_dir) == "running"
    if trainer.step >= steps and not unfinished:
        raise ConfigError(
            [
                f"resume: the checkpoint is at step {trainer.step}, and trainer.steps={steps}: "
                f"raise trainer.steps to go on"
            ]
        )
    if unfinished:
        log.info("the run stopped after its final checkpoint (step %d): finishing it", steps)
    else:
        log.info("resuming %s at step %d", checkpoint, trainer.step)
