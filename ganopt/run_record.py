"""Reading a run directory: the one checked loader behind ``resume=``, ``ganopt-sample``, the
scripts and the sweep summaries (docs, "Reliability").

A run directory is data from someone else. Its record is parsed as data: the overrides in
``.hydra/overrides.yaml`` by Hydra's override grammar, each a ``key=value`` on a key the schema
or a config group knows, setting no code and nothing of Hydra's; the resolved config in
``.hydra/config.yaml`` as plain YAML, merged into the typed schema and checked like any config.
Nothing from it is handed to Hydra as a command-line argument of its own choosing.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganopt.composition import check_overrides, config_dir, parse_override
from ganopt.config import Config, ConfigError, check_structure
from ganopt.rundir import LAST
from ganopt.setup.names import written

#: the file of a run's overrides, and of its resolved config, inside the run directory
OVERRIDES = Path(".hydra") / "overrides.yaml"
CONFIG = Path(".hydra") / "config.yaml"
#: a record larger than this is not one ganopt wrote
MAX_RECORD_BYTES = 1_000_000
#: top-level keys a recorded override may set (``resume`` names the run itself)
RECORDED_KEYS = {f.name for f in fields(Config)} - {"resume"}


def locate(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint) of a run directory (its checkpoints/last.pt) or a checkpoint
    file inside ``<run>/checkpoints/``. Any other file names no run, and is refused. Raises
    ConfigError."""
    path = Path(path).expanduser()
    try:
        return _locate(path)
    except OSError as e:  # a name too long for the file system, a loop of links...
        raise ConfigError([f"resume: cannot read {str(path)[:80]}: {e.strerror or e}"]) from None


def _locate(path: Path) -> tuple[Path, Path]:
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
    if not (run_dir / OVERRIDES).is_file():
        raise ConfigError([f"resume: {run_dir} is not a run directory (no {OVERRIDES})"])
    return run_dir, checkpoint


class _PlainLoader(yaml.SafeLoader):
    """YAML as ganopt writes it: plain data, without aliases (a few nested aliases expand to
    billions of nodes once the config is merged)."""

    def compose_node(self, parent: object, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not part of a run's record")
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


#: nesting deeper than any config ganopt writes
MAX_DEPTH = 32


def _depth(tree: object) -> int:
    if isinstance(tree, dict):
        return 1 + max(map(_depth, tree.values()), default=0)
    if isinstance(tree, list):
        return 1 + max(map(_depth, tree), default=0)
    return 0


def _read_yaml(source: Path) -> object:
    """A record file's YAML, as plain data (no tags, no objects, no aliases, not too deep)."""
    try:
        if source.stat().st_size > MAX_RECORD_BYTES:
            raise ConfigError([f"{source}: over {MAX_RECORD_BYTES:,} bytes, not a run's record"])
        data = yaml.load(source.read_text(encoding="utf-8"), Loader=_PlainLoader)
        deep = _depth(data) > MAX_DEPTH
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise ConfigError([f"{source} is not readable YAML ({reason})"]) from None
    if deep:
        raise ConfigError([f"{source}: nested over {MAX_DEPTH} levels, not a run's record"])
    return data


def recorded_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was started with, each checked and written back as ``key=value``
    from its parsed parts. Raises ConfigError, naming the file and the entry, for anything
    else: a flag, a deletion or sweep, a key of Hydra's or one the schema does not know, a
    code key at any depth."""
    source = Path(run_dir) / OVERRIDES
    lines = _read_yaml(source)
    lines = [] if lines is None else lines
    if not isinstance(lines, list) or not all(isinstance(o, str) for o in lines):
        raise ConfigError([f"{source} must be a list of override strings"])
    checked = []
    for line in lines:
        override = parse_override(line)
        if override is None or override.is_delete() or override.is_sweep_override():
            raise ConfigError([f"{source}: {line[:60]!r} is not a key=value override; refused"])
        key = override.key_or_group
        group = key.split("@")[0]
        known = (config_dir() / group).is_dir() or key.split(".")[0] in RECORDED_KEYS
        into_hydra = (override.package or "").removeprefix("_global_").lstrip(".")
        if group.startswith("hydra") or into_hydra.startswith("hydra") or not known:
            raise ConfigError(
                [
                    f"{source} sets {key}: a run directory may set ganopt's own settings and "
                    f"choose its config options, nothing else; refused"
                ]
            )
        value = line.split("=", 1)[1].strip()
        checked.append(f"{override.get_key_element()}={value}")
    try:
        check_overrides(checked)
    except ConfigError as e:
        raise ConfigError([f"{source}: {p}" for p in e.problems]) from None
    return checked


def recorded_config(run_dir: Path) -> DictConfig:
    """The run's resolved config (``.hydra/config.yaml``), typed by the schema and checked as
    any config is: unknown schema keys, code keys at any depth, unregistered components."""
    source = Path(run_dir) / CONFIG
    data = _read_yaml(source)
    if not isinstance(data, dict):
        raise ConfigError([f"{source} must be a mapping of config keys"])
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), data)
        check_structure(cfg)
        problems = written().problems(OmegaConf.to_container(cfg, resolve=True))
    except OmegaConfBaseException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError([f"{source}: {first}"]) from None
    except ConfigError as e:
        raise ConfigError([f"{source}: {p}" for p in e.problems]) from None
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    assert isinstance(cfg, DictConfig)
    return cfg


def recorded_settings(run_dir: Path) -> dict[str, str]:
    """The recorded overrides as {key: value} text, for tables (the sweep summary)."""
    settings = {}
    for line in recorded_overrides(run_dir):
        key, _, value = line.lstrip("+").partition("=")
        settings[key] = value
    return settings


def hydra_record(run_dir: Path) -> dict[str, Any]:
    """What Hydra recorded of a run (``.hydra/hydra.yaml``'s ``hydra`` node), as plain data."""
    source = Path(run_dir) / ".hydra" / "hydra.yaml"
    data = _read_yaml(source)
    record = data.get("hydra") if isinstance(data, dict) else None
    if not isinstance(record, dict):
        raise ConfigError([f"{source} has no hydra node"])
    return record


def _metrics(run_dir: Path) -> dict[str, Any]:
    try:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def recorded_status(run_dir: Path) -> str | None:
    """The ``status`` in the run's metrics.json, or None where there is no readable one."""
    status = _metrics(run_dir).get("status")
    return status if isinstance(status, str) else None


#: a periodic checkpoint's name says its step
PERIODIC = re.compile(r"step_(\d+)\.pt")


def recorded_checkpoint_step(run_dir: Path, checkpoint: Path) -> int | None:
    """The step ``checkpoint`` holds as the run recorded it, without loading it: a periodic
    file's name, or metrics.json's checkpoint_step for last.pt (written together with it)."""
    if match := PERIODIC.fullmatch(checkpoint.name):
        return int(match.group(1))
    step = _metrics(run_dir).get("checkpoint_step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None
