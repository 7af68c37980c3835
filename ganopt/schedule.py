"""Learning-rate schedules, applied to G's and D's optimizers alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class LinearDecay:
    """Both learning rates stay at their configured values, then fall linearly toward 0 over
    the last ``fraction`` of the ``total`` generator steps (``optim.lr_decay``).

    A GAN near its equilibrium keeps circling it at a constant step size; shrinking the steps
    at the end lets the players settle (the samples sharpen), as the decaying step sizes of
    stochastic approximation require. The rates are recomputed from the configured ones at
    every step, so a resumed run follows the same schedule."""

    def __init__(
        self, optimizers: Sequence[torch.optim.Optimizer], total: int, fraction: float
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"the decay fraction must be in (0, 1], got {fraction}")
        self.optimizers = list(optimizers)
        self.base = [[group["lr"] for group in opt.param_groups] for opt in self.optimizers]
        self.total = total
        self.start = total * (1 - fraction)  # the last step at the full rate

    def factor(self, step: int) -> float:
        """The multiplier of the configured rates during generator step ``step`` (1-based):
        1 until ``start``, then falling to 1 / (total - start) at the last step."""
        if step <= self.start:
            return 1.0
        return max(self.total - step + 1, 0) / (self.total - self.start)

    def set(self, step: int) -> None:
        factor = self.factor(step)
        for opt, base in zip(self.optimizers, self.base, strict=True):
            for group, lr in zip(opt.param_groups, base, strict=True):
                group["lr"] = lr * factor
