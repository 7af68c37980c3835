"""An exponential moving average of the generator's weights (Yazıcı et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``module`` holds β · module + (1 - β) · G after every ``update(step)``; buffers
    (BatchNorm statistics) are copied. Samples and evaluation use it instead of G.

    β warms up as min(decay, (1 + t) / (10 + t)) at update t (TensorFlow's
    ``ExponentialMovingAverage`` with ``num_updates``): with a constant 0.999 the average would
    remember G's random initialization for thousands of steps, while early G changes fast.
    """

    def __init__(self, G: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(G).requires_grad_(False)
        self._params = list(self.module.parameters())
        self._sources = list(G.parameters())
        # pairs of buffers, listed once rather than by walking the modules at every step; they
        # are updated in place (BatchNorm's statistics, spectral norm's vectors)
        self._buffers = list(zip(self.module.buffers(), G.buffers(), strict=True))

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After G's ``step``-th update (1, 2, ...)."""
        torch._foreach_lerp_(self._params, self._sources, 1.0 - self.decay_at(step))
        for ema_buffer, buffer in self._buffers:
            ema_buffer.copy_(buffer)
