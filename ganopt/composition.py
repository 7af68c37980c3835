"""Where Hydra meets ganopt: the config directory, the schema and resolvers Hydra needs, and
composing a config outside a Hydra run (tests, scripts, and train.py's check of a command line
before Hydra creates a run directory). Building lives in ganopt/setup/."""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import re
import typing
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import ConfigRepository
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, Override
from hydra.core.utils import setup_globals
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from ganopt.config import CODE_KEYS, SCHEMA_NODES, ConfigError, code_keys, register_schema

#: longest directory name ganopt makes from overrides (file systems allow 255 bytes)
MAX_DIRNAME = 200


def config_dir() -> Path:
    """configs/ inside an installed wheel, else the source checkout's configs/."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


def safe_dirname(text: str) -> str:
    """Overrides as one directory name: no '/', no interpolation that Hydra would resolve in a
    path (``${data.path}``), at most MAX_DIRNAME characters."""
    name = text.translate(str.maketrans("/\\${}", "_____"))
    if len(name.encode()) > MAX_DIRNAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name.encode()[: MAX_DIRNAME - 9].decode(errors='ignore')}~{digest}"
    return name


def name_suffix(overrides: str) -> str:
    """``_loss=wgan,optim=sgd_clip`` for a single run's directory name ("" without overrides)."""
    return f"_{safe_dirname(overrides)}" if overrides else ""


@functools.cache
def register() -> None:
    """The schema and the resolvers configs/config.yaml uses, once a process (storing the
    schema costs as much as a composition)."""
    register_schema()
    OmegaConf.register_new_resolver("ganopt.safe_dirname", safe_dirname, replace=True)
    OmegaConf.register_new_resolver("ganopt.name_suffix", name_suffix, replace=True)


class RunComposer(ConfigLoaderImpl):
    """Hydra's config loader for one training run, which composes the run's config once:
    train.py checks a composition before Hydra starts, and Hydra's run of the same overrides
    takes that composition instead of composing again. What was checked is what runs, and a
    run does not pay for Hydra's composition three times (docs/performance.md, "Start-up")."""

    def __init__(self) -> None:
        super().__init__(config_search_path=create_config_search_path(str(config_dir())))
        self._held: tuple[tuple[object, ...], DictConfig] | None = None
        setup_globals()  # Hydra's resolvers (${now:...}), as hydra.main has them before it composes

    def compose(self, overrides: list[str]) -> DictConfig:
        """The run's config, Hydra's settings included, held for Hydra's run of ``overrides``."""
        cfg = super().load_configuration("config", overrides, RunMode.RUN)
        self._held = (("config", tuple(overrides), RunMode.RUN, True, True), cfg)
        return cfg

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        """The held composition, once, where Hydra asks for the same one; else Hydra's own."""
        asked = (config_name, tuple(overrides), run_mode, from_shell, validate_sweep_overrides)
        held, self._held = self._held, None
        if held is not None and held[0] == asked:
            return held[1]
        return super().load_configuration(
            config_name, overrides, run_mode, from_shell, validate_sweep_overrides
        )


def compose_config(
    overrides: list[str] | tuple[str, ...] = (),
    run: RunComposer | None = None,
    placed: list[str] | tuple[str, ...] = (),
) -> DictConfig:
    """The config train.py would run with these overrides, without Hydra's settings. Raises
    ConfigError, in one line, for anything Hydra cannot compose (an unknown option or key, a
    wrong type, bad syntax). With ``run``, the composition of ``overrides`` and ``placed`` (where
    ganopt has Hydra write, set by ganopt itself) is held there for Hydra's run."""
    register()
    check_overrides(list(overrides))
    check_group_overrides(list(overrides))
    try:
        if run is None:
            return _compose(list(overrides))
        return _without_hydra(run.compose([*overrides, *placed]))
    except (HydraException, OmegaConfBaseException, ValueError, TypeError, OSError) as e:
        raise ConfigError([_unknown_key(list(overrides)) or _first_lines(e)]) from None


def _without_hydra(cfg: DictConfig) -> DictConfig:
    """The run's own settings, as Hydra hands them to the run: a copy without ``hydra``."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def _compose(overrides: list[str]) -> DictConfig:
    """Hydra's composition of ``overrides``, at a fraction of its cost where it composes again
    what it composed before. Hydra reads and merges the config files anew on every call (80 ms);
    it then sets the command line's values (``trainer.steps=10``) on the composed config. So the
    composition of the groups' options (``loss=wgan``) is kept, and the values are set on a copy
    of it by Hydra's own function, in the order given: the same config, 10 ms. A command line
    that sets Hydra's own settings or interpolates (``${...}``, which may read Hydra's settings,
    the clock or the environment) is composed by Hydra as it stands. Tested against Hydra's own
    composition (tests/test_startup.py)."""
    if any("${" in o or o.lstrip("+~").startswith("hydra") for o in overrides):
        return _hydras_composition(str(config_dir()), tuple(overrides))
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [o for o in parsed if _sets_a_value(o)]
    choices = tuple(o.input_line for o in parsed if not _sets_a_value(o))
    cfg = copy.deepcopy(_composed_options(str(config_dir()), choices))
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg


def _sets_a_value(override: Override) -> bool:
    """An override Hydra sets on the composed config, as Hydra tells them from the overrides
    that choose what is composed: not a sweep, and a key that is no config group (or a dict
    value)."""
    if override.is_sweep_override():
        return False
    is_group = _repository(str(config_dir())).group_exists(override.key_or_group)
    return isinstance(override.value(), dict) or not is_group


@functools.cache
def _repository(configs: str) -> ConfigRepository:
    return ConfigRepository(config_search_path=create_config_search_path(configs))


@functools.lru_cache(maxsize=64)
def _composed_options(configs: str, choices: tuple[str, ...]) -> DictConfig:
    """Hydra's composition of the configs in ``configs``, kept: callers get a copy."""
    return _hydras_composition(configs, choices)


def _hydras_composition(configs: str, overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(config_dir=configs, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _unknown_key(overrides: list[str]) -> str | None:
    """For an override of a key the config does not have (``optim.lr=0.1``), the line that
    says so with the nearest real keys; None when that is not what went wrong."""
    for i, line in enumerate(overrides):
        override = parse_override(line)
        if override is None or override.is_add() or override.is_force_add():
            continue
        key = override.key_or_group
        if "/" in key or "@" in key or (config_dir() / key).is_dir():
            continue
        try:
            cfg = _compose([o for j, o in enumerate(overrides) if j != i])
        except (HydraException, OmegaConfBaseException, ValueError, TypeError, OSError):
            return None
        if OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT:
            continue
        return f"{key}: unknown key{did_you_mean(key, _paths(cfg))}"
    return None


_ABSENT = object()


def _paths(tree: object, prefix: str = "") -> list[str]:
    """Every dotted key of a config, nodes and leaves."""
    if not isinstance(tree, DictConfig):
        return []
    found = []
    for key in tree:
        path = f"{prefix}{key}"
        found += [path, *_paths(tree._get_node(key), path + ".")]
    return found


def did_you_mean(key: str, candidates: list[str]) -> str:
    """`` (did you mean optim.g.lr or optim.d.lr?)``: keys that end as ``key`` does, or whose
    spelling is close; "" when none is."""
    last = key.rsplit(".", 1)[-1]
    near = [c for c in candidates if c.rsplit(".", 1)[-1] == last]
    if not near:
        parent = key.rpartition(".")[0]
        leaves = {c.rsplit(".", 1)[-1]: c for c in candidates if c.rpartition(".")[0] == parent}
        near = [leaves[m] for m in difflib.get_close_matches(last, leaves, n=2, cutoff=0.75)]
        near += difflib.get_close_matches(key, candidates, n=2, cutoff=0.75)
    near = list(dict.fromkeys(near))[:3]
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def shortened(text: str, most: int = 40) -> str:
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
                f"{group}={shortened(choice)}: no such option; choose from {', '.join(options)}"
                for choice in choices
                if choice not in options
            ]
    if problems:
        raise ConfigError(problems)


#: The Hydra settings a command line may set, and the kind of value each takes: where runs go,
#: a launcher's and a sweeper's numbers and names (docs, "Sweeps" and "Scaling out"). Every
#: other Hydra setting (callbacks, logging, search path, mode, output record, job name, sweep
#: subdirectory, a launcher's setup commands, a sweeper's storage or search-space function) is
#: ganopt's: its configs set them, and a command line that names one is refused. Launchers and
#: sweepers are chosen by name (hydra/launcher=joblib), among what Hydra and its plugins ship.
HYDRA_SETTINGS: dict[str, type] = {
    "hydra.run.dir": str,
    "hydra.sweep.dir": str,
    "hydra.verbose": bool,
    "hydra.launcher.n_jobs": int,
    "hydra.sweeper.n_trials": int,
    "hydra.sweeper.n_jobs": int,
    "hydra.sweeper.direction": str,
    "hydra.sweeper.study_name": str,
    "hydra.sweeper.sampler.seed": int,
}
SLURM_NUMBERS = ("nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "mem_gb")
SLURM_NUMBERS += ("timeout_min", "array_parallelism")
HYDRA_SETTINGS |= {f"hydra.launcher.{key}": int for key in SLURM_NUMBERS}
HYDRA_SETTINGS |= {
    f"hydra.launcher.{key}": str for key in ("partition", "account", "qos", "constraint")
}
#: the search space of hydra/sweeper=optuna: hydra.sweeper.params.<a ganopt key>=<its range>
HYDRA_SEARCH_SPACE = "hydra.sweeper.params."
#: Hydra's groups a command line may choose an option of
HYDRA_GROUPS = ("hydra/launcher", "hydra/sweeper", "hydra/sweeper/sampler", "hydra/job_logging")
HYDRA_GROUPS += ("hydra/hydra_logging",)


def parse_override(line: str) -> Override | None:
    """One override parsed by Hydra's grammar, or None where the grammar rejects it."""
    try:
        (override,) = OverridesParser.create().parse_overrides([line])
    except (OverrideParseException, ValueError):
        return None
    return override


def grammar_problem(line: str) -> str:
    """What to type instead of an override Hydra's grammar cannot read."""
    key, equals, value = line.partition("=")
    if not equals or not value:
        return f"{shortened(line)}: not an override; write key=value (python train.py --help)"
    hint = f" or {key}=$HOME{value[1:]}" if value.startswith("~") else ""
    return (
        f"{shortened(line)}: Hydra's override grammar cannot read this value as it stands; quote "
        f"it for Hydra inside quotes for the shell: '{key}=\"{value}\"'{hint}"
    )


def override_values(override: Override) -> list[object]:
    """The values an override sets: one, or each choice of a sweep (ranges and intervals are
    numbers)."""
    if override.is_delete():
        return []
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    if isinstance(value, Glob):
        return [*value.include, *value.exclude]
    return [] if override.is_sweep_override() else [value]


def check_overrides(overrides: list[str]) -> None:
    """Overrides set values: refuse one that sets a code key (``_target_``...) at any depth of
    its key or value, or that sets Hydra's callbacks, logging or search path, or a Hydra
    setting to anything but plain values, or that Hydra's grammar cannot read."""
    problems = []
    for line in overrides:
        override = parse_override(line)
        if override is None:
            problems.append(grammar_problem(line))
            continue
        key = override.key_or_group
        if override.package is not None and _into_hydra(override.package):
            problems.append(f"{shortened(line)}: refused; a group's option goes to a ganopt key")
            continue
        problems += [p for v in override_values(override) if (p := _type_problem(key, v))]
        parts = key.replace("@", ".").replace("/", ".").split(".")
        values = override_values(override)
        found = [key] if any(p in CODE_KEYS for p in parts) else []
        found += [f"{key}.{path}" for v in values for path in code_keys(v)]
        if found:
            problems.append(f"{found[0]}: refused, a config sets values, never code")
        elif key == "resume" and any(isinstance(v, str) and "${" in v for v in values):
            problems.append("resume: a run directory or checkpoint path, without ${...}")
        elif key.startswith("hydra") and (problem := _hydra_problem(override, values, overrides)):
            problems.append(problem)
    if problems:
        raise ConfigError(problems)


def _into_hydra(package: str) -> bool:
    """A package that would put a group's option into Hydra's settings, or at the root."""
    head = package.removeprefix("_global_").lstrip(".").split(".")[0]
    return head in ("", "hydra")


def _type_problem(key: str, value: object) -> str | None:
    """A schema setting given a value of another type. OmegaConf converts for us where it
    should not: ``trainer.compile=2`` or ``=-1`` would be true, ``trainer.steps=true`` 1."""
    node, _, name = key.partition(".")
    schema = SCHEMA_NODES.get(node)
    hint = typing.get_type_hints(schema).get(name) if schema and "." not in name else None
    interpolated = isinstance(value, str) and "${" in value  # OmegaConf resolves and checks it
    if hint is None or interpolated or (value is None and type(None) in typing.get_args(hint)):
        return None
    kinds = set(typing.get_args(hint)) - {type(None)} or {hint}
    if bool in kinds and not isinstance(value, bool):
        return f"{key}: must be true or false, got {value!r}"
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if int in kinds and float not in kinds and not (numeric and isinstance(value, int)):
        return f"{key}: must be an integer, got {value!r}"
    if float in kinds and not numeric:
        return f"{key}: must be a number, got {value!r}"
    return None


def _hydra_problem(override: Override, values: list[object], others: list[str]) -> str | None:
    """Why a Hydra override is refused (see HYDRA_SETTINGS), or None."""
    key = override.key_or_group
    if key.startswith("hydra/"):
        names = all(isinstance(v, str) and re.fullmatch(r"[\w-]+", v) for v in values)
        if key in HYDRA_GROUPS and not override.package and names:
            return None
        return f"{key}: refused; a command line may choose {', '.join(HYDRA_GROUPS)} by name"
    if key.startswith(HYDRA_SEARCH_SPACE):
        return _search_space_problem(override, others)
    kind = HYDRA_SETTINGS.get(key)
    if kind is None:
        settable = ", ".join(sorted(HYDRA_SETTINGS))
        return (
            f"{key}: refused; ganopt's configs set Hydra's other settings, a command line may "
            f"set {settable} and {HYDRA_SEARCH_SPACE}<key>"
        )
    if override.is_sweep_override():
        return f"{key}: one value; Hydra's settings are not swept"
    for value in values:
        plain = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is str and isinstance(value, str) and ("${" in value or "\n" in value):
            plain = False
        if not plain:
            return f"{key}: must be a plain {kind.__name__}, got {value!r}"
    return None


def _search_space_problem(override: Override, others: list[str]) -> str | None:
    """``hydra.sweeper.params.<key>=<range>`` is an override of <key> that the sweeper hands to
    every job: checked as one, on a ganopt key, inside a search space (hparams_search=...)."""
    key = override.key_or_group.removeprefix(HYDRA_SEARCH_SPACE)
    if not any(o.startswith(("hparams_search=", "+hparams_search=")) for o in others):
        return f"{HYDRA_SEARCH_SPACE}{key}: needs a search space first: hparams_search=<name>"
    if key.split(".")[0].split("/")[0] in ("hydra", "resume") or override.package is not None:
        return f"{HYDRA_SEARCH_SPACE}{key}: a search space ranges over ganopt's settings only"
    if override.is_delete():  # a dimension of the preset's space taken out
        return None
    line = f"{key}={override.input_line.split('=', 1)[1]}"
    try:
        check_overrides([line])
        check_group_overrides([line])
    except ConfigError as e:
        return f"{HYDRA_SEARCH_SPACE}{e.problems[0]}"
    return None
