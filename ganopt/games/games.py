"""Games whose equilibrium is known (docs/game.md, "Games with a known answer"): a player x that
minimizes its loss (G's role) and a player y that minimizes its own (D's role). Each game gives
both losses as functions of (x, y), so ganopt's optimizers run on it unchanged, as they do on a
GAN, and the distance to the equilibrium says how well an update rule does.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from ganopt.losses import GANLoss, StandardLoss


def _orthogonal(n: int, generator: torch.Generator) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # uniformly distributed (Mezzadri 2007)


class Game(ABC):
    """Two players' losses; ``start`` and ``equilibrium`` are (x, y) pairs of float64 vectors."""

    name: str

    @abstractmethod
    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(x's loss, y's loss), each minimized by its own player."""

    def distance(self, x: Tensor, y: Tensor) -> float:
        x_star, y_star = self.equilibrium
        return math.sqrt(float((x - x_star).pow(2).sum() + (y - y_star).pow(2).sum()))


class LinearGame(Game):
    """A game whose vector field v(z) = (d loss_x / dx, d loss_y / dy) is affine:
    v(z) = J (z - z*), so every SGD-based update rule is a linear recurrence (ganopt/games/
    theory.py predicts it exactly). ``J`` is (2n, 2n), x first."""

    def __init__(self, jacobian: Tensor, equilibrium: tuple[Tensor, Tensor], seed: int) -> None:
        self.jacobian, self.equilibrium = jacobian, equilibrium
        n = len(equilibrium[0])
        g = torch.Generator().manual_seed(seed + 1)
        self.start = tuple(
            e + torch.randn(n, generator=g, dtype=torch.float64) for e in equilibrium
        )

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Quadratic losses whose gradients make the field J (z - z*): each player's loss holds
        its own block row of J (the other player's variable is a constant to it)."""
        n = len(x)
        u, w = x - self.equilibrium[0], y - self.equilibrium[1]
        jxx, jxy = self.jacobian[:n, :n], self.jacobian[:n, n:]
        jyx, jyy = self.jacobian[n:, :n], self.jacobian[n:, n:]
        loss_x = 0.5 * u @ jxx @ u + u @ jxy @ w.detach()
        loss_y = 0.5 * w @ jyy @ w + w @ jyx @ u.detach()
        return loss_x, loss_y


class Bilinear(LinearGame):
    """min_x max_y xᵀAy + bᵀx + cᵀy in ``n`` dimensions, A = U diag(σ) Vᵀ with the given
    singular values: the field J = [[0, A], [-Aᵀ, 0]] is a pure rotation. The equilibrium is
    x* = -A⁻ᵀc, y* = -A⁻¹b."""

    name = "bilinear"

    def __init__(self, singular_values: list[float], seed: int = 0) -> None:
        n = len(singular_values)
        g = torch.Generator().manual_seed(seed)
        self.sigma = torch.tensor(singular_values, dtype=torch.float64)
        self.U, self.V = _orthogonal(n, g), _orthogonal(n, g)
        self.A = self.U @ torch.diag(self.sigma) @ self.V.T
        b = torch.randn(n, generator=g, dtype=torch.float64)
        c = torch.randn(n, generator=g, dtype=torch.float64)
        zero = torch.zeros(n, n, dtype=torch.float64)
        jacobian = torch.cat([torch.cat([zero, self.A], 1), torch.cat([-self.A.T, zero], 1)])
        star = (-torch.linalg.solve(self.A.T, c), -torch.linalg.solve(self.A, b))
        super().__init__(jacobian, star, seed)


class Quadratic(LinearGame):
    """A strongly monotone quadratic game: J = s [[cos(πθ/2) I, sin(πθ/2) Q], [-sin(πθ/2) Qᵀ,
    cos(πθ/2) I]], Q orthogonal, so every eigenvalue of J is s·e^{±iπθ/2}. ``rotation`` θ from 0
    (a pure potential: two separate strongly convex problems) to 1 (a pure rotation: bilinear);
    strongly monotone, with modulus s·cos(πθ/2), for θ < 1."""

    name = "quadratic"

    def __init__(self, n: int, rotation: float, scale: float = 1.0, seed: int = 0) -> None:
        if not 0 <= rotation <= 1:
            raise ValueError(f"rotation must be in [0, 1], got {rotation}")
        g = torch.Generator().manual_seed(seed)
        q = _orthogonal(n, g)
        eye = torch.eye(n, dtype=torch.float64)
        sym, anti = (
            scale * math.cos(math.pi * rotation / 2),
            scale * math.sin(math.pi * rotation / 2),
        )
        jacobian = torch.cat(
            [torch.cat([sym * eye, anti * q], 1), torch.cat([-anti * q.T, sym * eye], 1)]
        )
        star = tuple(torch.randn(n, generator=g, dtype=torch.float64) for _ in range(2))
        self.rotation, self.eigenvalue = rotation, scale * complex(sym / scale, anti / scale)
        super().__init__(jacobian, star, seed)


class Dirac(Game):
    """The Dirac-GAN (Mescheder et al. 2018): data at 0, G a point mass at θ (x), D(t) = ψ t
    (y); the logits are a_real = 0 and a_fake = ψθ, and ganopt's loss objects give both losses.
    The one equilibrium is (0, 0), where the unregularized field rotates (Jacobian eigenvalues
    ±i f'(0), 1/2 for the logistic losses). Not linear: no exact prediction, only the
    linearization's rate near the equilibrium."""

    name = "dirac"

    def __init__(self, loss: GANLoss | None = None) -> None:
        self.loss = loss or StandardLoss()
        zero = torch.zeros(1, dtype=torch.float64)
        self.equilibrium = (zero, zero)
        self.start = (torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
        self.jacobian = torch.tensor([[0.0, -0.5], [0.5, 0.0]], dtype=torch.float64)

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        real = torch.zeros_like(x)
        fake = y * x
        loss_x = self.loss.g_loss(fake, None)
        loss_y = self.loss.d_loss(real * y, (y * x.detach()))
        return loss_x, loss_y
