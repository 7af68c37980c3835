"""Fully connected G and D for low-dimensional (toy) data.

Layers are named ``fc1, fc2, ..., out`` so that per-parameter TensorBoard tags read
``grad_norm/D/fc1.weight`` rather than ``net.0.weight``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from ganopt.models.dcgan import check_flag
from ganopt.models.spectral import apply_spectral_norm


def _mlp(in_features: int, hidden: Sequence[int], out_features: int) -> OrderedDict:
    widths_ok = isinstance(hidden, Sequence) and not isinstance(hidden, str)
    if not widths_ok or not hidden or not all(isinstance(h, int) and h >= 1 for h in hidden):
        raise ValueError(f"hidden layer widths must be a non-empty list of positive ints: {hidden}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = in_features
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, int(h))
        layers[f"act{i}"] = nn.ReLU()
        width = int(h)
    layers["out"] = nn.Linear(width, out_features)
    return layers


class MLPGenerator(nn.Sequential):
    """z (N, z_dim) → sample (N, *data_shape), ReLU hidden layers, linear output."""

    def __init__(self, z_dim: int, data_shape: Sequence[int], hidden: Sequence[int]) -> None:
        super().__init__(_mlp(int(z_dim), hidden, math.prod(data_shape)))
        self.z_dim = int(z_dim)
        self.data_shape = tuple(data_shape)

    def forward(self, z: Tensor) -> Tensor:
        return super().forward(z).view(z.shape[0], *self.data_shape)


class MLPDiscriminator(nn.Sequential):
    """sample (N, *data_shape) → logit (N,), ReLU hidden layers, no output nonlinearity;
    optionally every layer spectrally normalized (Miyato et al. 2018)."""

    def __init__(
        self, data_shape: Sequence[int], hidden: Sequence[int], spectral_norm: bool = False
    ) -> None:
        super().__init__(_mlp(math.prod(data_shape), hidden, 1))
        if check_flag("spectral_norm", spectral_norm):
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.flatten(1)).squeeze(1)
