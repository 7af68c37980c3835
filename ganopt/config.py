"""The config schema and its validation: bad input fails here, naming the key, before a run
writes anything.

Types are checked by OmegaConf while Hydra composes (``trainer.steps=abc`` fails with
``full_key: trainer.steps``); ranges by :func:`validate`, everything else by
ganopt/setup/checks.py, the one place every refusal is reachable from.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganopt.evidence import criterion_problems

SCHEMA_NAME = "ganopt_schema"


@dataclass
class TrainerConfig:
    """The training loop's own settings; the Trainer receives this object, not a DictConfig."""

    steps: int = 5000  # generator updates
    batch_size: int = 256  # samples per batch, real and generated alike (all ranks together)
    d_steps: int = 1  # D (critic) updates per G update: n_critic
    update: str = "alternating"  # alternating (G sees D's new weights) | simultaneous
    log_every: int = 50  # scalars and gradient norms every N generator steps
    sample_every: int = 500  # sample figure every N generator steps; 0 = only at the end
    figures: bool = True  # sample, gradient-flow and spectrum figures; false: none at all
    hist_every: int = 500  # histograms of D outputs and per-layer gradients; 0 = never
    eval_every: int = 1000  # evaluation metrics every N generator steps; 0 = only at the end
    ckpt_every: int = 1000  # checkpoint every N generator steps; 0 = only at the end
    keep_ckpts: int = 3  # periodic checkpoints kept besides last.pt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0  # seeds weights, data, latents and evaluation: a run repeats bit for bit
    progress: bool = True  # a progress bar on stderr
    threads: Any = "auto"  # CPU threads for torch: auto (torch's own count) or a number
    ema_decay: float | None = 0.999  # an EMA of G's weights for samples and evaluation
    compile: bool = False  # torch.compile the passes between log steps (CPU or CUDA)
    fused: bool = False  # torch's fused optimizer kernels: faster, rounded differently
    flat_params: bool = True  # each network's parameters in one buffer: faster, same bits
    flush_denormal: bool = True  # CPU: optimizer steps flush subnormal floats to zero
    # CUDA only (on a CPU they are ignored, so results there never change):
    cuda_graphs: bool = False  # compile, and replay the compiled passes as CUDA graphs
    amp: str = "none"  # none | bf16: autocast the forward passes to bfloat16
    channels_last: bool = True  # channels-last memory format for convolutional models
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over all ranks


@dataclass
class OptimConfig:
    g: Any = MISSING  # G's optimizer, by registered name, and its arguments (optimizer@optim.g=sgd)
    d: Any = MISSING  # ... and D's own, another instance
    clip: float | None = None  # WGAN weight clipping of every D parameter to [-clip, clip]
    lr_decay: float = 0.0  # both lrs fall linearly to 0 over this last fraction of the steps
    # Lookahead-minmax: {k: 5, alpha: 0.5}, both players' slow weights move alpha of the way
    # every k generator steps (optim=lookahead_adam, docs/game.md); null: off
    lookahead: Any = None


@dataclass
class DiagnosticsConfig:
    shadow: bool | None = None  # the other generator losses' gradient norms; null: toy data only
    input_gradients: bool = True  # grad_x/D/{real,fake,interp}
    vanishing_ratio: float = 1e-3  # alarm when ||grad G|| < ratio x its running maximum
    exploding_ratio: float = 1e2  # alarm when ||grad G|| or ||grad D|| > ratio x its median
    stalled_ratio: float = 1e-6  # "not learning": G's ||dtheta||/||theta|| below this ...
    stalled_logs: int = 3  # ... for this many log steps in a row
    # docs/game.md: a DCGAN's spectrum costs seconds on a CPU, so images default to never
    game_every: int | None = None  # the game's spectrum every N steps; null: 2-D data, mid-run, end
    game_k: int = 6  # eigenvalues kept, the largest by modulus
    game_iters: int = 20  # Arnoldi / Lanczos iterations: one double backward each


@dataclass
class ObjectiveConfig:
    """What the task function returns, for hyperparameter sweepers (hydra/sweeper=optuna)."""

    metric: str | None = None  # a metrics.json key, e.g. kl or fd_digits; null: return nothing
    direction: str = "minimize"  # minimize | maximize: a failed run returns the worst value
    # {metric: threshold}: a run succeeds when every metric is at least as good as its threshold
    # (a number or a metrics.json key): {modes:n_modes,hq_ratio:0.8}; null: that on 2-D
    # mixtures, none on images (docs/sweeps.md)
    success: Any = None


@dataclass
class Config:
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    resume: str | None = None  # a run directory or checkpoint to continue, in that directory
    model: Any = MISSING  # G and D by registered name, and z_dim (model=mlp, model=dcgan)
    data: Any = MISSING  # the data source by registered name and its arguments (data=ring8)
    loss: Any = MISSING  # the GAN loss by registered name (loss=wgan)
    reg: Any = MISSING  # a regularizer by registered name (reg=r1, reg=none)
    reg2: Any = None  # a second regularizer beside reg: +reg@reg2=instance_noise
    reg3: Any = None  # and a third
    aug: Any = MISSING  # DiffAugment of D's inputs by registered name (aug=diffaugment, aug=none)


def register_schema() -> None:
    """Make the schema available to ``configs/config.yaml``'s defaults list."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)


class ConfigError(ValueError):
    """A config that must not start a run. The message, one line, names every offending key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = [" ".join(p.split()) for p in problems]
        super().__init__("invalid config: " + "; ".join(self.problems))


#: the nodes a config must have, each a mapping (``model.g=null`` or ``~optim`` is refused)
REQUIRED_NODES = (
    *("trainer", "optim", "optim.g", "optim.d", "model", "model.g", "model.d"),
    *("data", "loss", "reg", "aug"),
)
#: nodes typed by the schema: a key they do not declare is a typo (``+trainer.step=10``)
SCHEMA_NODES = {
    "trainer": TrainerConfig,
    "optim": OptimConfig,
    "diagnostics": DiagnosticsConfig,
    "objective": ObjectiveConfig,
}
#: the keys with which Hydra's ``instantiate`` turns a config node into code; ganopt builds its
#: components by registered name (ganopt/setup/registry.py), and refuses these at any depth so
#: that a config, command line or run directory never names code, even for a library
CODE_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_", "_self_")
#: torch.manual_seed takes 64-bit seeds; ganopt derives a few more from the one given
MAX_SEED = 2**63 - 2**16
#: learning rates and other optimizer numbers end up in float32 kernels
FLOAT32_MAX = 3.4028234663852886e38


def _success_problems(success: object) -> list[str]:
    if success is None:
        return []
    if not isinstance(success, DictConfig):
        return [f"objective.success: a mapping {{metric: threshold}}, got {success!r}"]
    return criterion_problems(OmegaConf.to_container(success))


def check_structure(cfg: DictConfig) -> None:
    """What must hold before any value can be read: every interpolation resolves, every
    required node is a mapping, the schema's nodes have no unknown keys, and no number anywhere
    is NaN or infinite. Raises ConfigError naming the keys."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError([f"{key}: {message}"]) from None
    problems = [f"{key}: refused, a config sets values, never code" for key in code_keys(plain)]
    for dotted in REQUIRED_NODES:
        node = _lookup(plain, dotted)
        if not isinstance(node, dict):
            problems.append(f"{dotted}: must be a config node, got {node!r}")
    top = {f.name for f in fields(Config)}
    for key in sorted(set(plain) - top):
        close = difflib.get_close_matches(key, top, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{key}: unknown key{hint}")
    for name, schema in SCHEMA_NODES.items():
        node = plain.get(name)
        declared = {f.name for f in fields(schema)}
        for key in sorted(set(node or {}) - declared):
            close = difflib.get_close_matches(key, declared, n=1)
            hint = f" (did you mean {name}.{close[0]}?)" if close else ""
            problems.append(f"{name}.{key}: unknown key{hint}")
    problems += [f"{key}: must be finite, got {value}" for key, value in _non_finite(plain)]
    if problems:
        raise ConfigError(problems)


def code_keys(tree: object, prefix: str = "") -> list[str]:
    """The full path of every CODE_KEYS key in a plain container, in dicts and lists alike."""
    if isinstance(tree, dict):
        found = [f"{prefix}{k}" for k in tree if k in CODE_KEYS]
        return found + [p for k, v in tree.items() for p in code_keys(v, f"{prefix}{k}.")]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in code_keys(v, f"{prefix}{i}.")]
    return []


def _lookup(tree: object, dotted: str) -> object:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _non_finite(tree: object, prefix: str = "") -> list[tuple[str, float]]:
    """(key, value) of every NaN or infinite float in a plain container."""
    if isinstance(tree, dict):
        return [kv for k, v in tree.items() for kv in _non_finite(v, f"{prefix}{k}.")]
    if isinstance(tree, list):
        return [kv for i, v in enumerate(tree) for kv in _non_finite(v, f"{prefix}{i}.")]
    if isinstance(tree, float) and not math.isfinite(tree):
        return [(prefix.rstrip("."), tree)]
    return []


def is_number(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_min(problems: list[str], key: str, value: int, minimum: int) -> None:
    if value < minimum:
        problems.append(f"{key}: must be >= {minimum}, got {value}")


def _check_positive_number(problems: list[str], key: str, value: object) -> None:
    if not is_number(value) or value <= 0:
        problems.append(f"{key}: must be a finite number > 0, got {value!r}")


def _check_optim(problems: list[str], optim: DictConfig) -> None:
    for net in ("g", "d"):
        lr = optim[net].get("lr")
        _check_positive_number(problems, f"optim.{net}.lr", lr)
        if is_number(lr) and lr > FLOAT32_MAX:
            problems.append(f"optim.{net}.lr: must fit in float32 (< 3.4e38), got {lr}")
    if optim.clip is not None:
        _check_positive_number(problems, "optim.clip", optim.clip)
    if not (is_number(optim.lr_decay) and 0 <= optim.lr_decay <= 1):
        problems.append(f"optim.lr_decay: must be in [0, 1], got {optim.lr_decay!r}")


def _check_diagnostics(problems: list[str], diagnostics: DictConfig) -> None:
    vanishing, exploding = diagnostics.vanishing_ratio, diagnostics.exploding_ratio
    if not 0 < vanishing < 1:
        problems.append(f"diagnostics.vanishing_ratio: must be in (0, 1), got {vanishing}")
    if not exploding > 1:
        problems.append(f"diagnostics.exploding_ratio: must be > 1, got {exploding}")
    if not 0 < diagnostics.stalled_ratio < 1:
        problems.append(
            f"diagnostics.stalled_ratio: must be in (0, 1), got {diagnostics.stalled_ratio}"
        )
    _check_min(problems, "diagnostics.stalled_logs", diagnostics.stalled_logs, 1)
    if diagnostics.game_every is not None:
        _check_min(problems, "diagnostics.game_every", diagnostics.game_every, 0)
    _check_min(problems, "diagnostics.game_k", diagnostics.game_k, 1)
    _check_min(problems, "diagnostics.game_iters", diagnostics.game_iters, diagnostics.game_k)


def validate(cfg: DictConfig) -> None:
    """Check the structure, types and ranges of a composed config (ganopt/setup/checks.py adds
    the device and the components). Raises :class:`ConfigError` listing every problem."""
    check_structure(cfg)
    problems: list[str] = []
    t = cfg.trainer
    for key, minimum in [
        ("steps", 1),
        ("batch_size", 1),
        ("d_steps", 1),
        ("log_every", 1),
        ("sample_every", 0),
        ("hist_every", 0),
        ("eval_every", 0),
        ("ckpt_every", 0),
        ("keep_ckpts", 0),
    ]:
        _check_min(problems, f"trainer.{key}", t[key], minimum)
    if not 0 <= t.seed <= MAX_SEED:
        problems.append(f"trainer.seed: must be in [0, {MAX_SEED}], got {t.seed}")
    _check_optim(problems, cfg.optim)
    cpus = os.cpu_count() or 1
    threads_ok = t.threads == "auto" or (
        isinstance(t.threads, int) and not isinstance(t.threads, bool) and 1 <= t.threads <= cpus
    )
    if not threads_ok:
        problems.append(
            f"trainer.threads: must be auto or an int from 1 to this machine's {cpus} CPUs, "
            f"got {t.threads!r}"
        )
    update = t["update"]  # not t.update: a DictConfig's update is the mapping method
    if update not in ("alternating", "simultaneous"):
        problems.append(f"trainer.update: must be alternating or simultaneous, got {update!r}")
    if t.amp not in ("none", "bf16"):
        problems.append(f"trainer.amp: must be none or bf16, got {t.amp!r}")
    if t.ema_decay is not None and not 0 < t.ema_decay < 1:
        problems.append(f"trainer.ema_decay: must be in (0, 1) or null, got {t.ema_decay}")
    _check_diagnostics(problems, cfg.diagnostics)
    if cfg.objective.direction not in ("minimize", "maximize"):
        problems.append(
            f"objective.direction: must be minimize or maximize, got {cfg.objective.direction!r}"
        )
    problems += _success_problems(cfg.objective.success)
    z_dim = cfg.model.get("z_dim")
    if not isinstance(z_dim, int) or isinstance(z_dim, bool) or z_dim < 1:
        problems.append(f"model.z_dim: must be an int >= 1, got {z_dim!r}")
    if problems:
        raise ConfigError(problems)
