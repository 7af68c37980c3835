"""Where Hydra meets ganopt: the config directory, the schema and resolvers Hydra needs, and
composing a config outside a Hydra run (tests, scripts, and train.py's check of a command line
before Hydra creates a run directory). Instantiating lives in ganopt/build.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganopt.config import ConfigError, register_schema
from ganopt.resume import hydra_subdir_resolver, run_dir_resolver

#: longest directory name ganopt makes from overrides (file systems allow 255 bytes)
MAX_DIRNAME = 200


def config_dir() -> Path:
    """configs/ inside an installed wheel, else the source checkout's configs/."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


def safe_dirname(text: str) -> str:
    """Overrides as one directory name: no '/', at most MAX_DIRNAME characters."""
    name = text.replace("/", "_").replace("\\", "_")
    if len(name.encode()) > MAX_DIRNAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name.encode()[: MAX_DIRNAME - 9].decode(errors='ignore')}~{digest}"
    return name


def name_suffix(overrides: str) -> str:
    """``_loss=wgan,optim=sgd_clip`` for a single run's directory name ("" without overrides)."""
    return f"_{safe_dirname(overrides)}" if overrides else ""


def register() -> None:
    """The schema and the resolvers configs/config.yaml uses (idempotent)."""
    register_schema()
    OmegaConf.register_new_resolver("ganopt.safe_dirname", safe_dirname, replace=True)
    OmegaConf.register_new_resolver("ganopt.name_suffix", name_suffix, replace=True)
    OmegaConf.register_new_resolver("ganopt.run_dir", run_dir_resolver, replace=True)
    OmegaConf.register_new_resolver(
        "ganopt.hydra_subdir", hydra_subdir_resolver, replace=True, use_cache=True
    )


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config train.py would run with these overrides. Raises ConfigError, in one line, for
    anything Hydra cannot compose (an unknown option or key, a wrong type, bad syntax)."""
    register()
    check_group_overrides(list(overrides))
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError, TypeError, OSError) as e:
        raise ConfigError([_first_lines(e)]) from None


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def _first_lines(error: BaseException) -> str:
    """One line from Hydra's messages, which span lines and keep the reason in their cause
    ("Error merging override trainer.steps=abc" from "Value 'abc' could not be converted to
    Integer / full_key: trainer.steps")."""
    parts = []
    for e in (error, error.__cause__):
        lines = [line.strip() for line in str(e or "").splitlines() if line.strip()]
        parts += lines[:1] + [line for line in lines[1:] if line.startswith("full_key:")]
    return ": ".join(parts) or type(error).__name__


def check_group_overrides(overrides: list[str]) -> None:
    """A config group takes an option by name. Hydra fails with a bare TypeError or ValueError
    and a traceback on anything else (``loss=[8,8]``, ``loss=null``, ``loss=5``); refuse those
    first, naming the override. Overrides Hydra cannot parse are left to Hydra's own message."""
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
        options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        if not all(isinstance(choice, str) for choice in choices):
            problems.append(f"{line}: {group} takes one option by name: {', '.join(options)}")
        elif not group.startswith("hydra"):  # Hydra's own groups also come from its plugins
            problems += [
                f"{group}={_short(choice)}: no such option; choose from {', '.join(options)}"
                for choice in choices
                if choice not in options
            ]
    if problems:
        raise ConfigError(problems)
