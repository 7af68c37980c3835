"""WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1, line 7)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class WeightClipper:
    """Clamp every given parameter to [-bound, bound]; called after each D step.

    Clipping is the WGAN paper's crude way to keep the critic K-Lipschitz. It acts on every
    parameter, biases included, in two fused foreach kernels.
    """

    def __init__(self, params: Iterable[nn.Parameter], bound: float) -> None:
        if bound <= 0:
            raise ValueError(f"clip bound must be > 0, got {bound}")
        self.params = list(params)
        self.bound = float(bound)

    @torch.no_grad()
    def __call__(self) -> None:
        torch._foreach_clamp_min_(self.params, -self.bound)
        torch._foreach_clamp_max_(self.params, self.bound)

    def __repr__(self) -> str:
        return f"WeightClipper(bound={self.bound})"
