"""The GAN objective: every forward pass a training step makes, given (G, D, real, z) — the
fakes, D's perturbed inputs, D's logits, the loss, and the penalties — and the phases of a
generator step (D × d_steps, any lazy regularizer, G). The Trainer only does zero_grad,
backward, step and clipping, phase by phase. docs/architecture.md shows how to add a loss or
a regularizer through it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganopt.diagnostics.memorization import Memorization
from ganopt.losses import GANLoss
from ganopt.regularizers import Consensus, Regularizer


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
    """What G's phase computed: its loss (and G-side penalties), its fakes and D's logits on
    them with their graph (the shadow diagnostics need it), and on real data for relativistic
    losses."""

    loss: Tensor
    penalty: Tensor | None
    fake: Tensor
    out_fake: Tensor
    out_real: Tensor | None

    @property
    def objective(self) -> Tensor:
        return self.loss if self.penalty is None else self.loss + self.penalty


@dataclass(frozen=True)
class Phase:
    """One part of a generator step: "D" (repeated d_steps times), "G", "DG" (both players'
    gradients at the same point, then both steps: simultaneous updates), or "reg" (a lazy
    regularizer's own step, every ``every`` generator steps). ``measured``: the log step's
    diagnostics come from this phase's last repeat."""

    kind: str
    repeats: int = 1
    every: int = 1
    regularizer: Regularizer | None = None
    measured: bool = True


class Objective:
    """A loss and its regularizers, computed from the networks and the batch. ``augment``
    transforms every image D sees (aug=diffaugment); ``memorization`` reports D's outputs on
    training and held-out reals from D's step on log steps (docs/limited_data.md)."""

    def __init__(
        self,
        loss: GANLoss,
        regularizers: Sequence[Regularizer] = (),
        autocast_bf16: bool = False,
        *,
        augment: Callable[[Tensor], Tensor] | None = None,
        memorization: Memorization | None = None,
    ) -> None:
        self.loss = loss
        self.regularizers = list(regularizers)
        self.augment, self.memorization = augment, memorization
        self.d_inline = [r for r in self.regularizers if r.network == "D" and r.every == 1]
        self.g_inline = [r for r in self.regularizers if r.network == "G" and r.every == 1]
        self.lazy = [r for r in self.regularizers if r.every > 1]
        self.consensus = [r for r in self.regularizers if isinstance(r, Consensus)]
        self._grad_inputs = set().union(*(r.needs_input_grad for r in self.d_inline))
        # the game's losses take every regularizer of each side, lazy ones included
        self._on_d = [r for r in self.regularizers if r.network == "D"]
        self._on_g = [r for r in self.regularizers if r.network == "G"]
        self._game_grad_inputs = set().union(*(r.needs_input_grad for r in self.regularizers))
        self._bf16 = autocast_bf16

    @property
    def g_needs_real(self) -> bool:
        """G's step takes a real batch: for a relativistic loss, or for consensus's field."""
        return self.loss.uses_real_in_g or bool(self.consensus)

    def phases(self, d_steps: int, update: str = "alternating") -> list[Phase]:
        """Alternating: D × d_steps, then G against the new D. Simultaneous: the last D step
        and G's step take their gradients at the same point (the others run before)."""
        lazy = [Phase("reg", every=r.every, regularizer=r) for r in self.lazy]
        if update == "alternating":
            return [Phase("D", repeats=d_steps), *lazy, Phase("G")]
        critic = [Phase("D", repeats=d_steps - 1, measured=False)] if d_steps > 1 else []
        return [*critic, *lazy, Phase("DG")]

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast of the forward passes (trainer.amp=bf16 on CUDA), else nothing.
        Penalties are computed in float32, outside it."""
        if self._bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def perturb(self, x: Tensor, step: int) -> Tensor:
        """D's input as D sees it during generator step ``step``, in every pass that reads D:
        augmented (aug=diffaugment, as in DiffAugment's code: reals and fakes, D's step and
        G's), then any instance noise. Penalties then differentiate D at these inputs."""
        if self.augment is not None:
            x = self.augment(x)
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
        seen_real, fake = self._d_input(real, "real", step), self._d_input(fake, "fake", step)
        with self.autocast():
            out_real, out_fake = D(seen_real), D(fake)
            loss = self.loss.d_loss(out_real, out_fake)
        terms = [r.penalty(D_plain, seen_real, fake, out_real, out_fake) for r in self.d_inline]
        if self.consensus:
            terms.append(self.consensus_penalty(G, D_plain, real, z, step))
        if self.memorization is not None:  # reports on log steps only
            seen = functools.partial(self.perturb, step=step)
            self.memorization.report(D_plain, out_real, seen, self.autocast)
        return DPass(loss, _sum(terms), seen_real.detach(), fake.detach(), out_real, out_fake)

    def g_pass(
        self, G: nn.Module, D: nn.Module, z: Tensor, step: int, real: Tensor | None = None
    ) -> GPass:
        """G's loss through D (whose weights the caller has frozen, except under consensus);
        D's logits on ``real`` too where the loss needs them, and consensus's field term."""
        with self.autocast():
            fake = G(z)
            out_fake = D(self.perturb(fake, step))
            out_real = None
            if self.loss.uses_real_in_g:
                with torch.no_grad():
                    out_real = D(self.perturb(real, step))
            loss = self.loss.g_loss(out_fake, out_real)
        terms = [r.g_penalty(G, z, fake) for r in self.g_inline]
        if self.consensus:
            terms.append(self.consensus_penalty(G, D, real, z, step))
        return GPass(loss, _sum(terms), fake, out_fake, out_real)

    def game_losses(
        self, G: nn.Module, D: nn.Module, real: Tensor, z: Tensor, step: int
    ) -> tuple[Tensor, Tensor]:
        """(L_G, L_D) at one point, each differentiable in both players' weights: the game whose
        vector field v = (∇θ L_G, ∇φ L_D) the players follow. Every regularizer joins at its
        average weight (a lazy one unscaled), consensus's term included. WGAN-GP's interpolates
        are detached, as in its training step."""
        loss_G, loss_D = self._plain_game_losses(G, D, real, z, step)
        if self.consensus:
            term = self._consensus_term(G, D, loss_G, loss_D)
            return loss_G + term, loss_D + term
        return loss_G, loss_D

    def consensus_penalty(
        self, G: nn.Module, D: nn.Module, real: Tensor, z: Tensor, step: int
    ) -> Tensor:
        """Consensus's gamma/2 ||v||² at this point, on its own forward pass (the step's own
        passes keep G or D out of the graph)."""
        return self._consensus_term(G, D, *self._plain_game_losses(G, D, real, z, step))

    def _consensus_term(self, G: nn.Module, D: nn.Module, loss_G: Tensor, loss_D: Tensor) -> Tensor:
        field = player_gradients((loss_G, loss_D), (G, D), create_graph=True)
        return torch.stack([r.field_penalty(field) for r in self.consensus]).sum()

    def _plain_game_losses(
        self, G: nn.Module, D: nn.Module, real: Tensor, z: Tensor, step: int
    ) -> tuple[Tensor, Tensor]:
        with self.autocast():
            fake = G(z)
        real = self._d_input(real, "real", step, self._game_grad_inputs)
        fake_in = self.perturb(fake, step)  # keeps G's graph; R2 differentiates through it
        with self.autocast():
            out_real, out_fake = D(real), D(fake_in)
            loss_D = self.loss.d_loss(out_real, out_fake)
            loss_G = self.loss.g_loss(out_fake, out_real if self.loss.uses_real_in_g else None)
        d_terms = [r.game_penalty(D, real, fake_in, out_real, out_fake) for r in self._on_d]
        g_terms = [r.g_penalty(G, z, fake) for r in self._on_g]
        return _plus(loss_G, _sum(g_terms)), _plus(loss_D, _sum(d_terms))

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


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def player_gradients(
    losses: tuple[Tensor, Tensor], players: tuple[nn.Module, nn.Module], create_graph: bool
) -> list[Tensor]:
    """The game's vector field: each player's loss differentiated in its own weights, G's
    parameters first (zeros where a loss does not reach a weight)."""
    field = []
    for loss, player in zip(losses, players, strict=True):
        params = trainable(player)
        grads = torch.autograd.grad(
            loss, params, create_graph=create_graph, retain_graph=True, allow_unused=True
        )
        field += zeros_for_none(grads, params)
    return field


def zeros_for_none(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    """autograd.grad's answer with allow_unused=True, a zero where an input was not reached."""
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, like, strict=True)]


def _plus(x: Tensor, term: Tensor | None) -> Tensor:
    return x if term is None else x + term


def _needed(term: Tensor | None, regularizer: Regularizer) -> Tensor:
    if term is None:
        raise ValueError(f"{regularizer!r} has an interval (every) but no penalty to apply")
    return term


def _sum(terms: list[Tensor | None]) -> Tensor | None:
    present = [t for t in terms if t is not None]
    return torch.stack(present).sum() if present else None
