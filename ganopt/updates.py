"""How a network's gradients become its step: its own optimizer over its parameters (or their
one buffer, trainer.flat_params), with subnormals flushed where trainer.flush_denormal asks,
D's weight clipping after D's step, the diagnostics that read a step on log steps, and after
the generator's step lookahead-minmax and the EMA."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.optim import optimizer as torch_optimizer

from ganopt.components import Components
from ganopt.diagnostics import Probe
from ganopt.eager import is_step_wrapper
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
            optimizer.extrapolate() if extrapolate else optimizer_step(optimizer)
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


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` without the profiler range torch opens around every step, where
    nothing would see it: no profiler records, and the optimizer has no step hook, no
    per-instance wrapper (an LR scheduler's) and no ``_optimizer_step_code`` of its own. Entering
    and leaving that range on every step slowed a default toy run's steps measurably
    (docs/performance.md); the arithmetic is the same. A trace observer running without the
    profiler (torch's ExecutionTraceObserver on its own) does not see the step's range."""
    step = type(optimizer).step
    if (
        not is_step_wrapper(step)  # not torch's wrapper (or a decorator over it): as it is
        or "step" in vars(optimizer)
        or type(optimizer)._optimizer_step_code is not torch.optim.Optimizer._optimizer_step_code
        or torch.autograd._profiler_enabled()
        or _has_step_hooks(optimizer)
    ):
        optimizer.step()
    else:
        step.__wrapped__(optimizer)


def _has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a step hook is registered on ``optimizer`` or for all optimizers (also when
    torch keeps them elsewhere than where this looks: then the wrapper runs them)."""
    hooks = (
        getattr(optimizer, "_optimizer_step_pre_hooks", None),
        getattr(optimizer, "_optimizer_step_post_hooks", None),
        getattr(torch_optimizer, "_global_optimizer_pre_hooks", None),
        getattr(torch_optimizer, "_global_optimizer_post_hooks", None),
    )
    return any(h is None or len(h) > 0 for h in hooks)


def zero_grad(params: list[nn.Parameter]) -> None:
    """The parameters' gradients, not the optimizer's: under trainer.flat_params its buffer's
    gradient is a copy, rewritten before each step."""
    for p in params:
        p.grad = None
