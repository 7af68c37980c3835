"""Before Hydra starts: everything that can be refused without writing a thing, and the run
(or sweep) directory ganopt chooses itself, so that no run ever writes into another's.

A flag that would read configs or a pickle from elsewhere, an override that sets code, a
``resume=`` whose record is not plain data or whose directory holds a symlink, a config that
does not compose or check: one line, exit 2 (docs/reliability.md, "How a run ends")."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from ganopt.composition import (
    RunComposer,
    check_group_overrides,
    check_overrides,
    compose_config,
    name_suffix,
    shortened,
)
from ganopt.config import ConfigError
from ganopt.distributed import World
from ganopt.resume import path_value, with_recorded_overrides
from ganopt.run_record import locate, recorded_checkpoint_step, recorded_status
from ganopt.rundir import (
    check_run_dir,
    holds_a_run,
    lock,
    new_run_dir,
    run_above,
    unused_run_dir,
)
from ganopt.setup.checks import check, check_config
from ganopt.stopping import ctrl_c_held

#: Hydra flags after which no run happens (help, printing the config, shell completion)
NO_RUN_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc")
NO_RUN_FLAGS += ("--shell-completion",)
#: Hydra flags that take the next argument as their value (shell completion's install=bash
#: and query=... are overrides to Hydra, which no run follows)
VALUED_FLAGS = ("-p", "--package", "-cp", "--config-path", "-cn", "--config-name")
VALUED_FLAGS += ("-cd", "--config-dir", "--experimental-rerun", "-c", "--cfg")
#: --info's optional value
INFO_FLAGS, INFO_CHOICES = ("-i", "--info"), ("all", "config", "defaults", "defaults-tree")
INFO_CHOICES += ("plugins", "searchpath")
#: every flag Hydra's command line takes
KNOWN_FLAGS = (*NO_RUN_FLAGS, *VALUED_FLAGS, "-m", "--multirun", "-r", "--run", "--resolve")
#: flags that only shape what --cfg or --help print
PRINTING_FLAGS = ("--resolve", "-p", "--package")
#: Hydra flags that read configs from elsewhere, or unpickle a config
REFUSED_FLAGS = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir")
REFUSED_FLAGS += ("--experimental-rerun",)
#: overrides a run directory's name leaves out, as configs/config.yaml's override_dirname does
NOT_IN_RUN_NAME = ("hydra", "resume=", "trainer.progress=")
#: keys configs/config.yaml leaves out of every run's name (override_dirname.exclude_keys)
NAMELESS_KEYS = ("trainer.progress", "resume")
#: overrides whose value is a path, which may hold the '=' and ',' of a run directory's name
PATH_KEYS = ("resume=", "hydra.run.dir=", "hydra.sweep.dir=")
#: the longest name a file system takes for one path component, in bytes
MAX_NAME_BYTES = 255


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


def preflight(argv: list[str], world: World, run: RunComposer | None = None) -> list[str]:
    """Everything that can be refused before Hydra creates or writes a run directory: a flag
    that loads configs or a pickle from elsewhere, an override that sets code, a ``resume=``
    whose record is not plain data or whose directory holds a symlink, a config that does not
    compose or check, a run directory that holds another run, cannot be written or is in use.
    Returns the argv for Hydra: the checked overrides and the run (or sweep) directory, which
    ganopt chooses itself. A single run's composition is held in ``run`` for Hydra's run of the
    returned argv (composed once). Raises ConfigError."""
    check_flags(argv)
    overrides = _overrides(argv)
    check_overrides(overrides)
    if not runs(argv):
        return argv
    if not single_run(argv):
        return _sweep(argv, overrides, world)
    return [argv[0], *_run_overrides(overrides, world, run or RunComposer())]


def single_run(argv: list[str]) -> bool:
    """Whether the command line trains one run (not a sweep)."""
    return runs(argv) and not any(a in ("-m", "--multirun") for a in argv[1:])


def runs(argv: list[str]) -> bool:
    """Whether the command line trains (not --help, --cfg, --info or shell completion)."""
    return not any(a in NO_RUN_FLAGS or a.startswith(("--cfg=", "--info=")) for a in argv[1:])


def check_flags(argv: list[str]) -> None:
    """ganopt composes its own configs/ (no --config-path, --config-dir, --config-name) and
    continues a run with resume=, never by unpickling a config (--experimental-rerun); a flag
    Hydra does not know is refused, not passed over."""
    previous = ""
    for arg in argv[1:]:
        flag = arg.split("=", 1)[0]
        if flag in REFUSED_FLAGS:
            raise ConfigError(
                [
                    f"{flag}: refused; ganopt reads its own configs/ only (add a preset under "
                    f"configs/experiment/), and resume=RUN continues a run"
                ]
            )
        valued = previous in VALUED_FLAGS or (previous in INFO_FLAGS and arg in INFO_CHOICES)
        if arg.startswith("-") and not valued and flag not in KNOWN_FLAGS:
            raise ConfigError(
                [f"{shortened(arg)}: no such flag; python train.py --help lists what there is"]
            )
        previous = "" if valued else arg
    flags = [arg.split("=", 1)[0] for arg in argv[1:]]
    printing = [f for f in flags if f in PRINTING_FLAGS]
    if printing and not any(f in ("-c", "--cfg", "-h", "--help") for f in flags):
        raise ConfigError([f"{printing[0]}: only with --cfg or --help (python train.py --help)"])


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
        return [*argv, *_job_names(overrides)]
    sweep_dir = new_run_dir(Path(f"multirun/{datetime.now():%Y-%m-%d/%H-%M-%S}"))
    return [*argv, *quote_paths([f"hydra.sweep.dir={sweep_dir}"]), *_job_names(overrides)]


def _job_names(overrides: list[str]) -> list[str]:
    """Job directories named by what differs between the jobs (``3_loss=wgan,trainer.seed=1``),
    so that TensorBoard's run list reads: the overrides every job shares are left out of the
    names (their records keep them). Nothing is left out where nothing is swept."""
    parser = OverridesParser.create()
    parsed = [parser.parse_override(o) for o in overrides if not o.startswith("hydra")]
    if not any(o.is_sweep_override() for o in parsed):
        return []
    shared = [o.get_key_element() for o in parsed if not o.is_sweep_override()]
    keys = ",".join(repr(k) for k in [*NAMELESS_KEYS, *shared])
    return [f"hydra.job.config.override_dirname.exclude_keys=[{keys}]"]


def _run_overrides(overrides: list[str], world: World, run: RunComposer) -> list[str]:
    """The overrides of a single run, checked, with where Hydra writes: a resumed run's
    directory and recorded overrides, a given hydra.run.dir that holds no other run, or a new
    directory named by the clock and the overrides (rank 0's choice under torchrun). Its
    config is composed once, with the directory it would have, and held in ``run``; the
    directory is made only once the config has passed."""
    given = [o for o in overrides if not o.startswith("hydra.run.dir=")]
    resumed = [path_value(o) for o in overrides if o.startswith("resume=")]
    named = [path_value(o) for o in overrides if o.startswith("hydra.run.dir=")]
    if resumed and named:
        raise ConfigError(["hydra.run.dir: resume= continues in the run's own directory; drop it"])
    run_dir: Path | None = None  # a new one, named by rank 0 (the other ranks compose again)
    base = _new_run_base(given)  # the clock read once: the name composed is the name made
    if resumed:
        run_dir = locate(resumed[-1])[0]
        check_run_dir(run_dir)
        given = with_recorded_overrides(run_dir, given)
    elif named:
        run_dir = Path(named[-1]).expanduser()
    elif world.is_main:
        run_dir = unused_run_dir(base)
    record = _resume_record(run_dir) if resumed and world.is_main else None
    placed = run_dir_overrides(run_dir, record, world) if run_dir else []
    cfg = compose_config(given, run, placed)
    check_config(cfg, world)  # without torch: a typo is answered before it loads
    if resumed:
        check_more_steps(resumed[-1], cfg.trainer.steps)
    if named:
        run_dir = _given_dir("hydra.run.dir", named[-1])
        if world.is_main and holds_a_run(run_dir):
            raise ConfigError(
                [
                    f"hydra.run.dir: {run_dir} holds another run; resume={run_dir} continues "
                    f"it, or choose a new directory"
                ]
            )
    elif not resumed and world.is_main:
        run_dir = new_run_dir(base)  # another run may have taken the name meanwhile
    if world.distributed and not resumed:
        run_dir = Path(world.broadcast(str(run_dir) if world.is_main else ""))
    assert run_dir is not None
    with ctrl_c_held():  # torch loads here: Ctrl-C waits for the import, then ends the run
        check(cfg, world)  # the registry itself and the device
    if world.is_main:
        check_writable(run_dir)
    if record is not None:
        record = new_run_dir(record)
    return [*given, *run_dir_overrides(run_dir, record, world)]


def _new_run_base(given: list[str]) -> Path:
    """outputs/DATE/TIME_<overrides>: a new run's directory, before a suffix that makes it new."""
    suffix = name_suffix(",".join(sorted(o for o in given if not o.startswith(NOT_IN_RUN_NAME))))
    return Path(f"outputs/{datetime.now():%Y-%m-%d/%H-%M-%S}{suffix}")


def _resume_record(run_dir: Path) -> Path:
    """Where a resumed run's Hydra record goes: .hydra/resumed_DATE_TIME beside the original's."""
    return unused_run_dir(run_dir / ".hydra" / f"resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}")


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
    if (other := run_above(path)) is not None:
        raise ConfigError([f"{key}: {path} lies inside the run directory {other}; refused"])
    return path


def run_dir_overrides(run_dir: Path, record: Path | None, world: World) -> list[str]:
    """Where Hydra writes: the run directory ganopt chose; a resumed run's record goes into
    ``record`` (.hydra/resumed_DATE_TIME) beside the original's. Under torchrun rank 0 alone
    writes Hydra's files and log. The mode, RUN, as hydra.main would set it."""
    extra = [*quote_paths([f"hydra.run.dir={run_dir}"]), "hydra.mode=RUN"]  # as hydra.main sets
    if record is not None:
        extra.append(f"hydra.output_subdir={record.relative_to(run_dir)}")
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
