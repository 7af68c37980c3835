"""How a network's gradients become its step: its own optimizer over its parameters (or their
one buffer, trainer.flat_params), with subnormals flushed where trainer.flush_denormal asks,
D's weight clipping after D's step, the diagnostics that read a step on log steps, and after
the generator's step lookahead-minmax and the EMA."""

from __future__ import annotations

import contextlib

from torch import nn

from ganopt.components import Components
from ganopt.diagnostics import Probe
from ganopt.optimizers import FlushedSubnormals


class Updates:
    """G's and D's optimizer steps, each its own instance."""

    def __init__(self, parts: Components) -> None:
        self.optimizers = {"G": parts.opt_G, "D": parts.opt_D}
        self.lookahead, self.ema = parts.lookahead, parts.ema
        self.flat, self.clipper, self.diagnostics = parts.flat, parts.clipper, parts.diagnostics
        flush = parts.settings.flush_denormal
        self.arithmetic = FlushedSubnormals() if flush else contextlib.nullcontext()

    def apply(self, network: str, probe: Probe | None, extrapolate: bool = False) -> None:
        """The optimizer's step (or its look-ahead, for extragradient), and D's clipping."""
        if probe:
            self.diagnostics.before_step(network)
        if network in self.flat:
            self.flat[network].gather_grads()
        optimizer = self.optimizers[network]
        with self.arithmetic:
            optimizer.extrapolate() if extrapolate else optimizer.step()
        if network == "D" and self.clipper is not None:
            self.clipper()
        if probe:
            self.diagnostics.after_step(probe, network)
            if network == "D":
                self.diagnostics.on_d_step(probe)

    def after_generator_step(self, step: int) -> None:
        """What follows G's step ``step`` (both players have stepped): lookahead-minmax's
        synchronization on its interval, then the EMA of G's weights."""
        if self.lookahead is not None:
            self.lookahead.after_generator_step(step)
        if self.ema is not None:
            self.ema.update(step)


def zero_grad(params: list[nn.Parameter]) -> None:
    """The parameters' gradients, not the optimizer's: under trainer.flat_params its buffer's
    gradient is a copy, rewritten before each step."""
    for p in params:
        p.grad = None
