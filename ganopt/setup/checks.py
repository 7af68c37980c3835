"""Whether a composed config can start a run: every reason it cannot, from one call."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from ganopt.config import ConfigError, validate
from ganopt.setup.registry import check_components


def check(cfg: DictConfig) -> torch.device:
    """The device to train on, or ConfigError naming every offending key: the schema's types
    and ranges, code keys at any depth, then each component's registered name and arguments."""
    device = validate(cfg)
    problems = check_components(OmegaConf.to_container(cfg, resolve=True))
    if problems:
        raise ConfigError(problems)
    return device
