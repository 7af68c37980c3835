"""An exponential moving average of the generator's weights (Yazıcı et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``module`` holds decay · module + (1 - decay) · G after every ``update()``; buffers
    (BatchNorm statistics) are copied. Samples and evaluation use it instead of G."""

    def __init__(self, G: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.G = G
        self.module = copy.deepcopy(G).requires_grad_(False)
        self._params = list(self.module.parameters())
        self._sources = list(G.parameters())

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self._params, self._sources, 1.0 - self.decay)
        for ema_buffer, buffer in zip(self.module.buffers(), self.G.buffers(), strict=True):
            ema_buffer.copy_(buffer)
