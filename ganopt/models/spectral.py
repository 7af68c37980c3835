"""Spectral normalization (Miyato et al. 2018) of every linear and convolutional layer."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def apply_spectral_norm(module: nn.Module) -> None:
    """Divide each weight by its largest singular value (one power iteration per forward), so
    every layer, and with 1-Lipschitz activations the whole network, is 1-Lipschitz."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
