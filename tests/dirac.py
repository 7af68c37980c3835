"""The Dirac-GAN (Mescheder et al. 2018) as torch modules, for tests of the Trainer's update
rules and of the game diagnostics: data a point mass at 0, G a point mass at theta, D(x) = psi x.
With the WGAN loss the game is the bilinear L = psi * theta, whose iterates have closed forms."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class PointGenerator(nn.Module):
    z_dim = 1
    data_shape = (1,)

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([theta], dtype=torch.float64))

    def forward(self, z: Tensor) -> Tensor:
        return self.theta.expand(z.shape[0], 1)


class LinearCritic(nn.Module):
    def __init__(self, psi: float) -> None:
        super().__init__()
        self.psi = nn.Parameter(torch.tensor([psi], dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return (x.to(self.psi.dtype) * self.psi).sum(1)


def zeros(batch: int = 4) -> Iterator[Tensor]:
    """The data: a point mass at 0."""
    return itertools.repeat(torch.zeros(batch, 1, dtype=torch.float64))
