"""Spectral normalization (Miyato et al. 2018) of every linear and convolutional layer."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def apply_spectral_norm(module: nn.Module) -> None:
    """Divide each weight by an estimate of its largest singular value (one power iteration per
    forward in training mode).

    A linear layer's weight is its operator, so each linear layer — and with 1-Lipschitz
    activations an MLP — becomes 1-Lipschitz. A convolution's weight is normalized as the
    matrix (out, in·k·k), as in SN-GAN; that matrix's σ = 1 does *not* bound the convolution's
    operator norm, which for DCGAN's 4×4 stride-2 kernels exceeds 1 (1.2–1.7 was measured
    here by power iteration on the convolution itself). The constraint is then approximate,
    as it is in SN-GAN."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
