"""How a network's gradients become its step: its own optimizer over its parameters (or their
one buffer, trainer.flat_params), with subnormals flushed where trainer.flush_denormal asks,
D's weight clipping after D's step, and the diagnostics that read a step on log steps."""

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


def zero_grad(params: list[nn.Parameter]) -> None:
    """The parameters' gradients, not the optimizer's: under trainer.flat_params its buffer's
    gradient is a copy, rewritten before each step."""
    for p in params:
        p.grad = None
