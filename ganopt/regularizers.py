"""What D (or G) is trained with besides its loss: gradient penalties and instance noise.

A penalty runs inside its network's step when ``every`` is 1 (built with ``create_graph=True``
and added to the loss, so one backward computes both), or lazily as a phase of its own every
``every`` steps, scaled by ``every`` (StyleGAN2's lazy regularization): docs/strategies.md;
docs/architecture.md shows how to add one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Regularizer:
    """Does nothing by default: subclasses change D's inputs, add a penalty, or both."""

    #: which of D's inputs the penalty differentiates through ({"real"}, {"fake"} or none)
    needs_input_grad: frozenset[str] = frozenset()
    #: whose loss the penalty joins: "D" (penalty()) or "G" (g_penalty())
    network: str = "D"

    def __init__(self, every: int = 1) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.every = every

    def perturb(self, x: Tensor, step: int) -> Tensor:
        """D's input as D sees it, in the D step and the G step alike."""
        return x

    def penalty(
        self, D: nn.Module, real: Tensor, fake: Tensor, out_real: Tensor, out_fake: Tensor
    ) -> Tensor | None:
        """A term added to D's loss, or None."""
        return None

    def g_penalty(self, G: nn.Module, z: Tensor, fake: Tensor) -> Tensor | None:
        """A term added to G's loss (network = "G"), or None."""
        return None

    def game_penalty(
        self, D: nn.Module, real: Tensor, fake: Tensor, out_real: Tensor, out_fake: Tensor
    ) -> Tensor | None:
        """The penalty as a term of the game's losses, which consensus optimization and the
        game's spectrum differentiate twice more: the same value as ``penalty``, in a form
        whose higher derivatives exist wherever the penalty's do."""
        return self.penalty(D, real, fake, out_real, out_fake)


def _input_grad_norms(outputs: Tensor, inputs: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.flatten(1).norm(dim=1)


class GradientPenalty(Regularizer):
    """``weight · E[(||∇x D(x)|| - center)²]`` at real samples, fake samples, or random
    interpolates between them.

    WGAN-GP (Gulrajani et al. 2017): interpolates, center 1, weight λ = 10.
    R1 / R2 (Mescheder et al. 2018): real / fake samples, center 0, weight γ/2.
    """

    def __init__(self, weight: float, where: str, center: float, every: int = 1) -> None:
        super().__init__(every)
        if where not in ("real", "fake", "interp"):
            raise ValueError(f"where must be real, fake or interp, got {where!r}")
        if weight <= 0:
            raise ValueError(f"the penalty's weight must be > 0, got {weight}")
        self.weight, self.where, self.center = float(weight), where, float(center)
        self.needs_input_grad = frozenset({where} & {"real", "fake"})

    def penalty(
        self, D: nn.Module, real: Tensor, fake: Tensor, out_real: Tensor, out_fake: Tensor
    ) -> Tensor:
        if self.where == "real":  # D's output on real already carries real's graph
            norms = _input_grad_norms(out_real, real)
        elif self.where == "fake":
            norms = _input_grad_norms(out_fake, fake)
        else:
            shape = (real.shape[0],) + (1,) * (real.dim() - 1)
            eps = torch.rand(shape, device=real.device)
            x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
            norms = _input_grad_norms(D(x), x)
        return self.weight * (norms - self.center).pow(2).mean()

    def game_penalty(
        self, D: nn.Module, real: Tensor, fake: Tensor, out_real: Tensor, out_fake: Tensor
    ) -> Tensor:
        """Zero-centred (R1, R2): ``weight · E[||∇x D||²]`` as a sum of squares. ``penalty``
        squares the norm, whose second derivative is undefined where ∇x D is exactly 0, as
        it is for a sample in a ReLU critic's flat region: consensus's third derivatives
        would be NaN there. The training step keeps the norm form, and with it every
        published number of the default recipe."""
        if self.center != 0 or self.where == "interp":
            return self.penalty(D, real, fake, out_real, out_fake)
        out, x = (out_real, real) if self.where == "real" else (out_fake, fake)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return self.weight * grad.pow(2).flatten(1).sum(1).mean()

    def __repr__(self) -> str:
        lazy = f", every={self.every}" if self.every > 1 else ""
        return (
            f"GradientPenalty(weight={self.weight:g}, where={self.where}, "
            f"center={self.center:g}{lazy})"
        )


def wgan_gp(lam: float = 10.0) -> GradientPenalty:
    """Gulrajani et al. (2017): λ E[(||∇D(x̂)|| - 1)²] on random interpolates x̂."""
    return GradientPenalty(lam, "interp", 1.0)


def r1(gamma: float = 10.0, every: int = 1) -> GradientPenalty:
    """Mescheder et al. (2018): γ/2 E_real[||∇D(x)||²], zero-centred on the data."""
    return GradientPenalty(gamma / 2, "real", 0.0, every)


def r2(gamma: float = 10.0, every: int = 1) -> GradientPenalty:
    """Mescheder et al. (2018): γ/2 E_fake[||∇D(x)||²], zero-centred on the generated samples."""
    return GradientPenalty(gamma / 2, "fake", 0.0, every)


class InstanceNoise(Regularizer):
    """Gaussian noise of std ``sigma`` on every input D sees, real and fake (Sønderby et al.
    2017; Arjovsky & Bottou 2017): it makes the two distributions overlap, so D cannot become
    perfect. With ``anneal_steps`` the std falls linearly to 0 over that many G steps."""

    def __init__(self, sigma: float = 0.1, anneal_steps: int | None = None) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if anneal_steps is not None and anneal_steps < 1:
            raise ValueError(f"anneal_steps must be >= 1 or null, got {anneal_steps}")
        self.sigma, self.anneal_steps = float(sigma), anneal_steps

    def sigma_at(self, step: int) -> float:
        if self.anneal_steps is None:
            return self.sigma
        return self.sigma * max(0.0, 1.0 - step / self.anneal_steps)

    def perturb(self, x: Tensor, step: int) -> Tensor:
        sigma = self.sigma_at(step)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def __repr__(self) -> str:
        return f"InstanceNoise(sigma={self.sigma:g}, anneal_steps={self.anneal_steps})"


class Consensus(Regularizer):
    """Consensus optimization (Mescheder, Nowozin & Geiger 2017): both players also descend
    ``gamma/2 ||v||²``, v = (∇θ L_G, ∇φ L_D) the game's joint gradient field at the current
    point, through a double backward. Its gradient ``gamma Jᵀv`` pulls both players toward
    points where the field vanishes, damping the rotation. Each player's step adds the part
    of that gradient in its own weights (docs/game.md)."""

    network = "both"

    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__()
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def field_penalty(self, field: list[Tensor]) -> Tensor:
        """``gamma/2 ||v||²`` of the field's components (built with ``create_graph=True``)."""
        return self.gamma / 2 * sum(g.pow(2).sum() for g in field)

    def __repr__(self) -> str:
        return f"Consensus(gamma={self.gamma:g})"


def consensus(gamma: float = 1.0) -> Consensus:
    """Mescheder et al. (2017): both players descend gamma/2 ||v||² as well."""
    return Consensus(gamma)
