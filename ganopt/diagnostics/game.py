"""The game's local geometry at the current point (docs/game.md).

GAN training follows the joint vector field v = (∇θ L_G, ∇φ L_D); simultaneous gradient steps
move along -v. Near a point where -v's Jacobian has eigenvalues with large imaginary parts the
iterates rotate instead of converging (Mescheder et al. 2017), and whether the point is a local
Nash equilibrium is read from each player's own Hessian (Berard et al. 2020). Everything here
is matrix-free: products with the Jacobian come from double backward passes through the
field's graph, never from the matrix, so the cost is a few backward passes per iteration.

- ``eigenvalues``: the top-k by modulus of the Jacobian of -v, by Arnoldi iteration on
  u ↦ -Jᵀu (a real matrix and its transpose have the same eigenvalues). Their real parts are
  all negative where small simultaneous steps converge; Mescheder et al.'s sign convention.
- ``hessian``: the extreme eigenvalues of ∇²θ L_G and ∇²φ L_D (Lanczos, which is Arnoldi on a
  symmetric operator). Both players minimize their own loss here, so a local Nash
  equilibrium has both Hessians positive semidefinite (D's of the value it maximizes is
  negative semidefinite).
- ``rotational_share``: ||A v||² / (||A v||² + ||S v||²) with S and A the symmetric and
  antisymmetric parts of J (the potential and Hamiltonian parts of Letcher et al. 2019):
  1 for a pure rotation (the unregularized Dirac-GAN), 0 for a potential game.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ganopt.diagnostics.measurements import buffers_preserved
from ganopt.objective import Objective, player_gradients, trainable, zeros_for_none

#: a ratio |Im λ| / |Re λ| for a purely imaginary eigenvalue: reported as this cap
ROTATION_CAP = 1e6


def _flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]).to(torch.float64)


def _weighted(pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Σ (o·w).sum() over (output, weight) pairs: its gradient is autograd's vector-Jacobian
    product with grad_outputs=w, bit for bit, without the import of torch's symbolic shapes
    that a tensor grad_outputs costs on first use (docs/performance.md, "Start-up")."""
    total = (pairs[0][0] * pairs[0][1]).sum()
    for output, weight in pairs[1:]:
        total = total + (output * weight).sum()
    return total


class GameField:
    """v at one point on one batch, with its graph kept for products with its Jacobian."""

    def __init__(self, losses: tuple[Tensor, Tensor], players: tuple[nn.Module, nn.Module]):
        self.players = [trainable(p) for p in players]
        self.params = [p for params in self.players for p in params]
        self.v = player_gradients(losses, players, create_graph=True)
        self.size = sum(p.numel() for p in self.params)

    def _split(self, u: Tensor, like: list[Tensor]) -> list[Tensor]:
        pieces = torch.split(u, [t.numel() for t in like])
        return [x.view_as(t).to(t.dtype) for x, t in zip(pieces, like, strict=True)]

    def _grad(self, outputs: list[Tensor], inputs: list[Tensor], u: Tensor) -> Tensor:
        """Σ_i u_i ∂outputs_i/∂inputs; an output constant in the weights (a WGAN critic's
        output bias) contributes nothing."""
        pairs = [(o, w) for o, w in zip(outputs, self._split(u, outputs), strict=True)]
        pairs = [(o, w) for o, w in pairs if o.requires_grad]
        if not pairs:
            return _flat([torch.zeros_like(x) for x in inputs])
        grads = torch.autograd.grad(_weighted(pairs), inputs, retain_graph=True, allow_unused=True)
        return _flat(zeros_for_none(grads, inputs))

    def jt(self, u: Tensor) -> Tensor:
        """Jᵀu, J = ∂v/∂w."""
        return self._grad(self.v, self.params, u)

    def j(self, u: Tensor) -> Tensor:
        """J u, by differentiating u' ↦ Jᵀu' (linear in u') with respect to u'."""
        dummy = [torch.zeros_like(v, requires_grad=True) for v in self.v]
        live = [(v, d) for v, d in zip(self.v, dummy, strict=True) if v.requires_grad]
        grads = torch.autograd.grad(
            _weighted(live), self.params, create_graph=True, allow_unused=True
        )
        return self._grad(zeros_for_none(grads, self.params), dummy, u)

    def hessian(self, player: int) -> Callable[[Tensor], Tensor]:
        """u ↦ the Hessian of player ``player``'s (0: G, 1: D) loss in its own weights, times u."""
        start = sum(len(p) for p in self.players[:player])
        own = self.v[start : start + len(self.players[player])]
        return lambda u: self._grad(own, self.players[player], u)

    def player_size(self, player: int) -> int:
        return sum(p.numel() for p in self.players[player])


def arnoldi(
    op: Callable[[Tensor], Tensor], n: int, iters: int, generator: torch.Generator
) -> Tensor:
    """The Hessenberg matrix of ``min(iters, n)`` Arnoldi steps of ``op`` (float64, with full
    reorthogonalization), stopping early on an invariant subspace. Its eigenvalues (Ritz
    values) approximate the outermost eigenvalues of ``op``; exact once the space is whole."""
    m = min(iters, n)
    basis = torch.zeros(m + 1, n, dtype=torch.float64)
    H = torch.zeros(m + 1, m, dtype=torch.float64)
    start = torch.randn(n, generator=generator, dtype=torch.float64)
    basis[0] = start / start.norm()
    for j in range(m):
        w = op(basis[j]).cpu()
        scale = w.norm()
        for _ in range(2):  # Gram-Schmidt twice: orthogonal to rounding
            h = basis[: j + 1] @ w
            w = w - basis[: j + 1].T @ h
            H[: j + 1, j] += h
        H[j + 1, j] = beta = w.norm()
        if beta <= 1e-10 * max(scale.item(), 1e-300):
            return H[: j + 1, : j + 1]
        basis[j + 1] = w / beta
    return H[:m, :m]


@dataclass
class GameMeasurement:
    eigenvalues: np.ndarray  # complex, the top-k by modulus, of the Jacobian of -v
    scalars: dict[str, float]


def measure_game(
    field: GameField, k: int, iters: int, generator: torch.Generator
) -> GameMeasurement:
    """The spectrum, both Hessians' extremes, the rotational share and ||v||."""
    device = field.params[0].device
    # the three iterations run one after another on this thread, not side by side: autograd
    # numbers the nodes it builds per thread, and a backward started on another thread sums
    # some gradients in another order (other bits on DCGAN, depending on the core count)
    H = arnoldi(lambda u: -field.jt(u.to(device)), field.size, iters, generator)
    eigs = torch.linalg.eigvals(H).numpy()
    top = eigs[np.argsort(-np.abs(eigs), kind="stable")[:k]]
    real, imag = top.real, np.abs(top.imag)
    ratios = [
        min(i / r, ROTATION_CAP) if r > 0 else (ROTATION_CAP if i > 0 else 0.0)
        for i, r in zip(imag, np.abs(real), strict=True)
    ]
    scalars = {
        "game/eig_real_max": float(real.max()),
        "game/eig_imag_max": float(imag.max()),
        "game/rotation": float(max(ratios)),
    }
    for index, name in enumerate("GD"):
        T = arnoldi(
            lambda u, i=index: field.hessian(i)(u.to(device)),
            field.player_size(index),
            iters,
            generator,
        )
        values = torch.linalg.eigvalsh((T + T.T) / 2)
        scalars[f"game/hessian_{name}_min"] = values.min().item()
        scalars[f"game/hessian_{name}_max"] = values.max().item()
    v = _flat([g.detach() for g in field.v])
    jv, jtv = field.j(v.to(device)), field.jt(v.to(device))
    antisymmetric, symmetric = (jv - jtv).norm() ** 2, (jv + jtv).norm() ** 2
    total = antisymmetric + symmetric
    scalars["game/rotational_share"] = (antisymmetric / total).item() if total > 0 else math.nan
    scalars["game/field_norm"] = v.norm().item()
    return GameMeasurement(top, scalars)


class GameProbe:
    """Measures the game on a fixed batch (the same at every measurement, so that changes
    come from the weights), from RNGs of its own, restoring BatchNorm's and spectral norm's
    buffers: measuring never moves the training trajectory. On the training thread
    (:meth:`measure`), or on copies beside training (:meth:`beside`) where the game's passes
    draw no random number (:meth:`draws_at_random`)."""

    def __init__(
        self,
        *,
        objective: Objective,
        G: nn.Module,
        D: nn.Module,
        data: object,
        batch_size: int,
        every: int,
        k: int,
        iters: int,
        seed: int,
    ) -> None:
        self.objective, self.G, self.D, self.data = objective, G, D, data
        self.batch_size, self.every, self.k, self.iters = batch_size, every, k, iters
        self.seed = seed

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def fixed_batch(self) -> tuple[Tensor, Tensor]:
        """(real, z): the same batch at every measurement, from generators of its own."""
        device = next(self.G.parameters()).device
        rng = torch.Generator(device=self.data.rng_device).manual_seed(self.seed)
        real = self.data.sample(self.batch_size, generator=rng).to(device)
        cpu = torch.Generator().manual_seed(self.seed)
        return real, torch.randn(self.batch_size, self.G.z_dim, generator=cpu).to(device)

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """The global RNG (instance noise, interpolates) seeded the same way each time and put
        back after, and the networks' buffers restored: training does not see the measurement."""
        device = next(self.G.parameters()).device
        devices = [device] if device.type == "cuda" else []
        with (
            torch.random.fork_rng(devices=devices),
            buffers_preserved(self.G),
            buffers_preserved(self.D),
        ):
            torch.manual_seed(self.seed)
            yield

    def field(self, step: int) -> GameField:
        return self._field(self.G, self.D, *self.fixed_batch(), step)

    def _field(self, G: nn.Module, D: nn.Module, real: Tensor, z: Tensor, step: int) -> GameField:
        return GameField(self.objective.game_losses(G, D, real, z, step), (G, D))

    def measure(self, step: int) -> GameMeasurement:
        with self.isolated():
            return self._measure(self.field(step))

    def _measure(self, field: GameField) -> GameMeasurement:
        return measure_game(field, self.k, self.iters, torch.Generator().manual_seed(self.seed))

    def draws_at_random(self, step: int) -> bool:
        """Whether the game's passes at ``step`` draw from the global RNG (instance noise,
        WGAN-GP's interpolates, DiffAugment), seen on two samples of the fixed batch, the
        global RNG put back after: such a game is measured on the training thread, as a
        thread beside it would take numbers from training's stream."""
        real, z = self.fixed_batch()
        with self.isolated():
            before = torch.random.get_rng_state()
            self.objective.game_losses(self.G, self.D, real[:2], z[:2], step)
            return not torch.equal(before, torch.random.get_rng_state())

    def beside(self, step: int) -> Callable[[], GameMeasurement]:
        """The measurement of ``step``, to run on another thread: on copies of the networks
        and of the fixed batch taken now, the same numbers as :meth:`measure`'s (tested)."""
        G, D = copy.deepcopy(self.G), copy.deepcopy(self.D)
        real, z = self.fixed_batch()
        return lambda: self._measure(self._field(G, D, real, z, step))
