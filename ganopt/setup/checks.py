"""Whether a config can start a run: every reason it cannot, reachable from here. The config
alone (its schema and ranges, its components by name, the update rule against the world it
runs in), which needs no torch, so that train.py answers a typo before torch loads; then the
device; then the built parts (a gradient penalty under BatchNorm)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from ganopt.config import ConfigError, validate
from ganopt.distributed import SINGLE_PROCESS, World
from ganopt.setup.names import NAME, Catalog, written

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ganopt.clipping import WeightClipper
    from ganopt.regularizers import Regularizer

log = logging.getLogger(__name__)


def check(cfg: DictConfig, world: World = SINGLE_PROCESS) -> torch.device:
    """The device to train on, or ConfigError naming every offending key: the schema's types
    and ranges, code keys at any depth, the device, each component's registered name and
    arguments (the registry's own, as it stands), and how the update rule fits the world and
    trainer.compile."""
    from ganopt.setup.device import resolve_device
    from ganopt.setup.registry import catalog

    problems = config_problems(cfg, world, catalog())
    try:
        device = resolve_device(cfg.trainer.device)
    except ConfigError as e:
        problems += e.problems
    if problems:
        raise ConfigError(problems)
    return device


def check_config(cfg: DictConfig, world: World = SINGLE_PROCESS) -> None:
    """ConfigError for everything :func:`check` refuses but the device, checked without torch:
    the components against ganopt/setup/catalog.json, the registry as last written."""
    if problems := config_problems(cfg, world, written()):
        raise ConfigError(problems)


def config_problems(cfg: DictConfig, world: World, catalog: Catalog) -> list[str]:
    """The schema's problems (raised at once: nothing else can be read without them), then
    every component's against ``catalog``, then the update rule's."""
    validate(cfg)
    problems = catalog.problems(OmegaConf.to_container(cfg, resolve=True))
    return problems or update_rule_problems(cfg, world, catalog)


def update_rule_problems(
    cfg: DictConfig, world: World, catalog: Catalog | None = None
) -> list[str]:
    """Extragradient looks ahead with both players or neither; consensus's double backward
    through both networks has no DistributedDataParallel form, and no compiled one. Which
    optimizers look ahead: ``catalog``'s (the written one by default)."""
    catalog = catalog or written()
    names = {key: OmegaConf.select(cfg, f"{key}.{NAME}") for key in ("optim.g", "optim.d")}
    looks_ahead = {key: name in catalog.extrapolating for key, name in names.items()}
    problems = []
    if looks_ahead["optim.g"] != looks_ahead["optim.d"]:
        problems.append(
            f"optim.g, optim.d: extragradient extrapolates both players or neither, got "
            f"{names['optim.g']} for G and {names['optim.d']} for D"
        )
    regularizers = [OmegaConf.select(cfg, f"{k}.{NAME}") for k in ("reg", "reg2", "reg3")]
    consensus = "consensus" in regularizers
    if world.distributed and consensus:
        problems.append("reg: consensus optimization is not supported under torchrun")
    compiled = cfg.trainer.compile or cfg.trainer.cuda_graphs
    if compiled and consensus:
        problems.append(
            "trainer.compile: consensus optimization differentiates both networks twice, "
            "which compiled graphs cannot; drop one of them"
        )
    return problems


def spectrally_normalized(module: nn.Module) -> bool:
    return any(hasattr(m, "parametrizations") for m in module.modules())


def refuse_batchnorm_under_penalty(D: nn.Module, sources: dict[str, Regularizer | None]) -> None:
    """A gradient penalty is a per-sample quantity; BatchNorm makes D(x_i) depend on the rest of
    the batch, so ∇x_i D is not the gradient the penalty is defined on."""
    from torch import nn

    from ganopt.regularizers import GradientPenalty

    penalties = [name for name, r in sources.items() if isinstance(r, GradientPenalty)]
    if penalties and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
        raise ConfigError(
            [
                f"model.d.norm: BatchNorm in D cannot be combined with the gradient penalty of "
                f"{penalties[0]} (the penalty is per sample, BatchNorm mixes the batch); use "
                f"model.d.norm=layer or none"
            ]
        )


def refuse_augmented_points(aug_name: str, data_name: str, data: object) -> None:
    """DiffAugment's operations (color, translation, cutout) are defined on images; 2-D points
    have no channels or pixels to move."""
    if aug_name != "none" and getattr(data, "kind", None) != "images":
        raise ConfigError(
            [
                f"aug: {aug_name} augments images, and this run's data ({data_name}) is "
                f"2-D points; use aug=none"
            ]
        )


def warn_unconstrained_critic(
    loss_name: str, D: nn.Module, regularizers: list[Regularizer], clipper: WeightClipper | None
) -> None:
    """WGAN's critic needs a Lipschitz constraint; without one the run is a result, not an
    error, so this warns."""
    from ganopt.regularizers import GradientPenalty

    constrained = (
        clipper
        or spectrally_normalized(D)
        or any(isinstance(r, GradientPenalty) for r in regularizers)
    )
    if loss_name == "wgan" and not constrained:
        log.warning(
            "loss=wgan without a Lipschitz constraint (optim.clip, a gradient penalty or "
            "model.d.spectral_norm): the critic is unbounded and the run will likely diverge"
        )
