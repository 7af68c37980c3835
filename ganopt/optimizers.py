"""Game-aware update rules as torch optimizers (docs/game.md).

Plain gradient descent on a two-player game follows a vector field that rotates, so its
iterates circle or spiral out. Two classic fixes change only how a player's optimizer turns
gradients into steps, so they are optimizers here, one instance per player as always:

- **Extragradient** (Korpelevich 1976; Extra-Adam, Gidel et al. 2019): ``extrapolate()``
  takes the base optimizer's step from the current point and remembers that point; the next
  ``step()`` goes back to it and takes the base step with the gradient measured at the
  extrapolated point. The base optimizer's state (Adam's moments) sees both gradients, as in
  the paper's code. The Trainer calls ``extrapolate`` for both players, then ``step``.
- **Optimism** (optimistic mirror descent, Daskalakis et al. 2018): the step is twice the base
  optimizer's update minus the previous one, ``2 u_t - u_{t-1}`` with ``u_0 = 0``; with SGD that
  is ``-2 lr g_t + lr g_{t-1}``, with Adam it is the paper's Optimistic Adam (Algorithm 1). One
  gradient per step; ``u_{t-1}`` is part of the optimizer's state, so checkpoints keep it.
- **Negative momentum** (Gidel et al. 2019b, "Negative Momentum for Improved Game Dynamics"):
  SGD's momentum and Adam's beta1 may be negative here, where torch refuses them: under
  alternating updates a negative momentum damps the rotation of a game.

Lookahead-minmax acts on both players at once, so it is not an optimizer: ganopt/lookahead.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["ExtraAdam", "ExtraSGD", "Extragradient", "FlushedSubnormals", "Optimistic"]
__all__ += ["SGD", "Adam", "OptimisticAdam", "OptimisticSGD"]


class FlushedSubnormals:
    """Within it, this thread's CPU arithmetic treats subnormal floats (below 1.2e-38) as zero,
    in and out (x86's DAZ and FTZ); IEEE arithmetic again after it (trainer.flush_denormal).

    Why: Adam's second moments of units whose gradient all but vanished decay through the
    subnormal range, where an x86 CPU computes many times slower, and a long run slows down
    with them. Within an optimizer step a subnormal moment weighs nothing beside eps, so the
    weights come out as they would without it in the runs docs/performance.md measures; the
    forward and backward passes, and so every measured gradient, stay IEEE. Reusable."""

    def __enter__(self) -> None:
        torch.set_flush_denormal(True)

    def __exit__(self, *exc: object) -> None:
        torch.set_flush_denormal(False)


class Extragradient(torch.optim.Optimizer):
    """Mixin for a torch optimizer: ``extrapolate()`` then ``step()`` is one extragradient
    step. A ``step()`` without an extrapolation before it is the base optimizer's step."""

    _anchor: list[Tensor] | None = None

    def extrapolate(self) -> None:
        """Step from the current point, remembering it; several extrapolations before a step
        keep the first point (as ``n_critic`` D steps do)."""
        if self._anchor is None:
            self._anchor = [p.detach().clone() for p in self._params()]
        super().step()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Back to the point before the extrapolation, then the base step with the gradient
        measured at the extrapolated point."""
        if self._anchor is not None:
            for p, anchor in zip(self._params(), self._anchor, strict=True):
                p.copy_(anchor)
            self._anchor = None
        return super().step(closure)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]


class Optimistic(torch.optim.Optimizer):
    """Mixin for a torch optimizer: each step is ``2 u_t - u_{t-1}``, u the base update."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        before = [p.clone() for p in params]
        loss = super().step(closure)
        for p, start in zip(params, before, strict=True):
            update = p - start
            previous = self.state[p].get("previous_update")
            p.add_(update if previous is None else update - previous)
            self.state[p]["previous_update"] = update
        return loss


class SGD(torch.optim.SGD):
    """torch's SGD, whose ``momentum`` may also be negative, in (-1, 0): heavy ball
    ``b = momentum b + g``, ``p -= lr b``, with the same arithmetic as torch's."""

    def __init__(self, params: object, lr: float = 1e-3, momentum: float = 0.0, **kwargs: object):
        negative = isinstance(momentum, (int, float)) and momentum < 0
        if negative and not momentum > -1:
            raise ValueError(f"Invalid momentum value: {momentum} (must be in (-1, 1))")
        if negative and (kwargs.get("nesterov") or kwargs.get("dampening")):
            raise ValueError("a negative momentum takes neither nesterov nor dampening")
        super().__init__(params, lr=lr, momentum=0.0 if negative else momentum, **kwargs)
        _set_after_init(self, "momentum", momentum)


class Adam(torch.optim.Adam):
    """torch's Adam, whose ``betas[0]`` may also be negative, in (-1, 0): the first moment
    ``m = beta1 m + (1 - beta1) g``, bias-corrected by ``1 - beta1^t`` as always."""

    def __init__(self, params: object, lr: float = 1e-3, betas: object = (0.9, 0.999), **kwargs):
        beta1 = betas[0] if isinstance(betas, (list, tuple)) and len(betas) == 2 else None
        negative = isinstance(beta1, (int, float)) and beta1 < 0
        if negative and not beta1 > -1:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1} (must be in (-1, 1))")
        start = (0.0, betas[1]) if negative else betas
        super().__init__(params, lr=lr, betas=start, **kwargs)
        _set_after_init(self, "betas", tuple(betas) if negative else start)


# the arguments ganopt's configs may set are torch's (ganopt/setup/registry.py reads them)
SGD.__signature__ = inspect.signature(torch.optim.SGD)
Adam.__signature__ = inspect.signature(torch.optim.Adam)


def _set_after_init(optimizer: torch.optim.Optimizer, key: str, value: object) -> None:
    """A setting torch's constructor would refuse, put where its step reads it."""
    optimizer.defaults[key] = value
    for group in optimizer.param_groups:
        group[key] = value


class ExtraSGD(Extragradient, torch.optim.SGD):
    """Extragradient with SGD steps."""


class ExtraAdam(Extragradient, torch.optim.Adam):
    """Extra-Adam (Gidel et al. 2019, Algorithm 4)."""


class OptimisticSGD(Optimistic, torch.optim.SGD):
    """Optimistic gradient descent: ``-2 lr g_t + lr g_{t-1}``."""


class OptimisticAdam(Optimistic, torch.optim.Adam):
    """Optimistic Adam (Daskalakis et al. 2018, Algorithm 1)."""
