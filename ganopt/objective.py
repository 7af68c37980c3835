"""The GAN objective: every forward pass a training step makes, given (G, D, real, z) — the
fakes, D's perturbed inputs, D's logits, the loss, and the penalties — and the phases of a
generator step (D × d_steps, any lazy regularizer, G). The Trainer only does zero_grad,
backward, step and clipping, phase by phase. docs/architecture.md shows how to add a loss or
a regularizer through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganopt.losses import GANLoss
from ganopt.regularizers import Regularizer


@dataclass
class DPass:
    """What D's phase computed: its loss, the penalties folded into it, and D's inputs and
    logits as D saw them (for the diagnostics)."""

    loss: Tensor
    penalty: Tensor | None
    real: Tensor
    fake: Tensor
    out_real: Tensor
    out_fake: Tensor

    @property
    def objective(self) -> Tensor:
        """What D descends: its loss plus the penalties (one backward computes both)."""
        return self.loss if self.penalty is None else self.loss + self.penalty


@dataclass
class GPass:
    """What G's phase computed: its loss (and G-side penalties), D's logits on its fakes with
    their graph (the shadow diagnostics need it), and on real data for relativistic losses."""

    loss: Tensor
    penalty: Tensor | None
    out_fake: Tensor
    out_real: Tensor | None

    @property
    def objective(self) -> Tensor:
        return self.loss if self.penalty is None else self.loss + self.penalty


@dataclass(frozen=True)
class Phase:
    """One part of a generator step: "D" (repeated d_steps times), "G", or "reg" (a lazy
    regularizer's own step, every ``every`` generator steps)."""

    kind: str
    repeats: int = 1
    every: int = 1
    regularizer: Regularizer | None = None


class Objective:
    """A loss and its regularizers, computed from the networks and the batch."""

    def __init__(
        self,
        loss: GANLoss,
        regularizers: Sequence[Regularizer] = (),
        autocast_bf16: bool = False,
    ) -> None:
        self.loss = loss
        self.regularizers = list(regularizers)
        self.d_inline = [r for r in self.regularizers if r.network == "D" and r.every == 1]
        self.g_inline = [r for r in self.regularizers if r.network == "G" and r.every == 1]
        self.lazy = [r for r in self.regularizers if r.every > 1]
        self._grad_inputs = set().union(*(r.needs_input_grad for r in self.d_inline))
        self._bf16 = autocast_bf16

    def phases(self, d_steps: int) -> list[Phase]:
        lazy = [Phase("reg", every=r.every, regularizer=r) for r in self.lazy]
        return [Phase("D", repeats=d_steps), *lazy, Phase("G")]

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast of the forward passes (trainer.amp=bf16 on CUDA), else nothing.
        Penalties are computed in float32, outside it."""
        if self._bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def perturb(self, x: Tensor, step: int) -> Tensor:
        """D's input as D sees it (instance noise) during generator step ``step``."""
        for regularizer in self.regularizers:
            x = regularizer.perturb(x, step)
        return x

    def d_pass(
        self, G: nn.Module, D: nn.Module, real: Tensor, z: Tensor, step: int, D_plain: nn.Module
    ) -> DPass:
        """D's loss on a real batch and fresh fakes (G is not in the graph), and the penalties
        that run in D's step. ``D_plain`` is D itself where ``D`` is its DDP wrapper."""
        with torch.no_grad(), self.autocast():
            fake = G(z)
        real, fake = self._d_input(real, "real", step), self._d_input(fake, "fake", step)
        with self.autocast():
            out_real, out_fake = D(real), D(fake)
            loss = self.loss.d_loss(out_real, out_fake)
        terms = [r.penalty(D_plain, real, fake, out_real, out_fake) for r in self.d_inline]
        return DPass(loss, _sum(terms), real.detach(), fake.detach(), out_real, out_fake)

    def g_pass(
        self, G: nn.Module, D: nn.Module, z: Tensor, step: int, real: Tensor | None = None
    ) -> GPass:
        """G's loss through D (whose weights the caller has frozen); D's logits on ``real``
        too where the loss needs them."""
        with self.autocast():
            fake = G(z)
            out_fake = D(self.perturb(fake, step))
            out_real = None
            if real is not None:
                with torch.no_grad():
                    out_real = D(self.perturb(real, step))
            loss = self.loss.g_loss(out_fake, out_real)
        terms = [r.g_penalty(G, z, fake) for r in self.g_inline]
        return GPass(loss, _sum(terms), out_fake, out_real)

    def lazy_penalty(
        self,
        regularizer: Regularizer,
        G: nn.Module,
        D: nn.Module,
        real: Tensor,
        z: Tensor,
        step: int,
    ) -> Tensor:
        """A lazy regularizer's term on its own batch, scaled by its interval as in StyleGAN2's
        lazy regularization, so that on average it weighs what it would every step."""
        if regularizer.network == "G":
            with self.autocast():
                fake = G(z)
            return regularizer.every * _needed(regularizer.g_penalty(G, z, fake), regularizer)
        with torch.no_grad(), self.autocast():
            fake = G(z)
        needs = set(regularizer.needs_input_grad)
        real = self._d_input(real, "real", step, needs)
        fake = self._d_input(fake, "fake", step, needs)
        with self.autocast():
            out_real, out_fake = D(real), D(fake)
        term = regularizer.penalty(D, real, fake, out_real, out_fake)
        return regularizer.every * _needed(term, regularizer)

    def _d_input(self, x: Tensor, which: str, step: int, needs: set[str] | None = None) -> Tensor:
        x = self.perturb(x, step)
        needs = self._grad_inputs if needs is None else needs
        return x.detach().requires_grad_(True) if which in needs else x


def _needed(term: Tensor | None, regularizer: Regularizer) -> Tensor:
    if term is None:
        raise ValueError(f"{regularizer!r} has an interval (every) but no penalty to apply")
    return term


def _sum(terms: list[Tensor | None]) -> Tensor | None:
    present = [t for t in terms if t is not None]
    return torch.stack(present).sum() if present else None
