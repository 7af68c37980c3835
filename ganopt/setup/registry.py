"""Components by registered name: the one place that says which code a config can choose.

A config node names its component (``loss: {name: wgan}``, ``optim.g: {name: adam, lr: ...}``)
and holds that component's arguments, plain values only. The class or function behind each
name is fixed here, in code: a config file, a command line or a run directory can choose among
these entries and set their arguments, never name other code (docs/architecture.md has the
recipes).

To add a component: write it, add one line to its table below, add a YAML file to the
matching folder of configs/ (configs/loss/, configs/optimizer/, ...) that sets ``name``, and run
``python scripts/docs_reference.py``, which writes the names and arguments the command line is
checked against before torch loads (ganopt/setup/catalog.json).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from ganopt import losses, regularizers
from ganopt.augment import DiffAugment
from ganopt.config import ConfigError
from ganopt.data import SwissRoll, digits, folder, grid, ring, torchvision_dataset
from ganopt.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from ganopt.optimizers import SGD, Adam, ExtraAdam, ExtraSGD, OptimisticAdam, OptimisticSGD
from ganopt.setup.names import NAME as NAME  # the registry's own, named in ganopt/setup/names.py
from ganopt.setup.names import Catalog


def _no_regularizer() -> None:
    """``reg=none``: nothing beyond what the loss carries."""
    return None


def _no_augmentation() -> None:
    """``aug=none``: D sees the images as they are."""
    return None


LOSSES: dict[str, Callable[..., Any]] = {
    cls.name: cls
    for cls in (
        losses.StandardLoss,
        losses.NonSaturatingLoss,
        losses.WassersteinLoss,
        losses.WGANGPLoss,
        losses.HingeLoss,
        losses.LeastSquaresLoss,
        losses.RelativisticLoss,
        losses.RelativisticAverageLoss,
        losses.RelativisticAverageLSLoss,
    )
}
REGULARIZERS: dict[str, Callable[..., Any]] = {
    "none": _no_regularizer,
    "r1": regularizers.r1,
    "r2": regularizers.r2,
    "instance_noise": regularizers.InstanceNoise,
    "consensus": regularizers.consensus,
}
GENERATORS: dict[str, Callable[..., Any]] = {"mlp": MLPGenerator, "dcgan": DCGANGenerator}
DISCRIMINATORS: dict[str, Callable[..., Any]] = {
    "mlp": MLPDiscriminator,
    "dcgan": DCGANDiscriminator,
}
DATA: dict[str, Callable[..., Any]] = {
    "ring": ring,
    "grid": grid,
    "swissroll": SwissRoll,
    "digits": digits,
    "folder": folder,
    **{
        name: functools.partial(torchvision_dataset, name)
        for name in ("mnist", "fashion_mnist", "cifar10")
    },
}
OPTIMIZERS: dict[str, Callable[..., Any]] = {
    "adam": Adam,  # torch's, and beta1 may be negative (negative momentum)
    "sgd": SGD,  # torch's, and momentum may be negative
    "rmsprop": torch.optim.RMSprop,
    "extra_adam": ExtraAdam,
    "extra_sgd": ExtraSGD,
    "optimistic_adam": OptimisticAdam,
    "optimistic_sgd": OptimisticSGD,
}
AUGMENTATIONS: dict[str, Callable[..., Any]] = {
    "none": _no_augmentation,
    "diffaugment": DiffAugment,
}


@dataclass(frozen=True)
class Slot:
    """Where a component is configured: what kind it is, its registered entries, and the
    arguments ganopt passes itself (the config may not set them)."""

    kind: str
    entries: Mapping[str, Callable[..., Any]]
    supplied: tuple[str, ...] = ()


REGULARIZER_SLOTS = ("reg", "reg2", "reg3")
SLOTS: dict[str, Slot] = {
    "loss": Slot("loss", LOSSES),
    **{key: Slot("regularizer", REGULARIZERS) for key in REGULARIZER_SLOTS},
    "model.g": Slot("generator", GENERATORS, ("z_dim", "data_shape")),
    "model.d": Slot("discriminator", DISCRIMINATORS, ("data_shape",)),
    "data": Slot("data source", DATA, ("batch_size", "device")),
    "optim.g": Slot("optimizer", OPTIMIZERS, ("params",)),
    "optim.d": Slot("optimizer", OPTIMIZERS, ("params",)),
    "aug": Slot("augmentation", AUGMENTATIONS),
}


@dataclass(frozen=True)
class Component:
    """A registered entry and the arguments its config node sets."""

    key: str
    name: str
    factory: Callable[..., Any]
    kwargs: dict[str, Any]

    def build(self, *args: Any, **supplied: Any) -> Any:
        """The component, built; an argument it refuses is a ConfigError naming the key."""
        try:
            return self.factory(*args, **self.kwargs, **supplied)
        except (TypeError, ValueError) as e:
            raise ConfigError([f"{self.key}: {e}".replace("\n", " ")]) from None


def plain(node: object) -> object:
    """A config node as plain Python values, interpolations resolved."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def arguments(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``factory`` takes, by name."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in inspect.signature(factory).parameters.items() if p.kind in kinds}


def component(key: str, node: object) -> Component:
    """The component configured at ``key`` (a plain dict from the config). Raises ConfigError,
    naming the key, for a node that is not a mapping, names no registered entry, or sets an
    argument the entry does not take."""
    slot = SLOTS[key]
    entries = {name: tuple(arguments(factory)) for name, factory in slot.entries.items()}
    one_slot = Catalog({key: (slot.kind, slot.supplied)}, {slot.kind: entries}, ())
    name, kwargs = one_slot.chosen(key, node)
    return Component(key, name, slot.entries[name], kwargs)


def catalog() -> Catalog:
    """The registry's names and arguments as they stand (a recipe or a test may have added
    an entry): what building checks against, and what scripts/docs_reference.py writes into
    ganopt/setup/catalog.json for the command line's check before torch loads."""
    from ganopt.optimizers import Extragradient

    looks_ahead = [
        name
        for name, optimizer in OPTIMIZERS.items()
        if isinstance(optimizer, type) and issubclass(optimizer, Extragradient)
    ]
    return Catalog(
        slots={key: (slot.kind, slot.supplied) for key, slot in SLOTS.items()},
        arguments={
            slot.kind: {name: tuple(arguments(f)) for name, f in slot.entries.items()}
            for slot in SLOTS.values()
        },
        extrapolating=tuple(sorted(looks_ahead)),
    )


def check_components(config: Mapping[str, Any]) -> list[str]:
    """Every problem with the components a plain (resolved) config names, without building."""
    return catalog().problems(config)
