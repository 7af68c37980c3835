"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do
actually converge?": the smallest GAN that shows why unregularized training does not converge.

The data is a point mass at 0, the generator a point mass at theta, the discriminator
D(x) = psi * x. Its logits are therefore a_real = 0 and a_fake = psi * theta, and ganopt's own
loss objects give both players' objectives. The only equilibrium is (theta, psi) = (0, 0), where
the unregularized vector field is a pure rotation (Jacobian eigenvalues +-i/2). Starting from
(1, 1), each method runs gradient steps of size h = --lr, simultaneous (both players at once)
or alternating (D first, then G against the new D):

    standard        the minimax loss: simultaneous steps spiral outward (each explicit Euler step
                    of a rotation grows the radius), alternating steps circle without
                    converging, their distance staying near its start
    nonsaturating   G's non-saturating loss: its higher-order terms pull the iterates in, so
                    simultaneous steps spiral inward to a limit cycle of radius about sqrt(2h),
                    and alternating steps do converge, but slowly (radius ~ t^-1/2)
    wgan            psi clipped to [-1, 1] (WGAN's Lipschitz constraint): oscillates
    wgan_gp         the WGAN loss plus lambda (|psi| - 1)^2, the gradient penalty at every x
                    (D's input gradient is psi everywhere): stops where psi = 0, theta != 0
    r1, r2          the standard loss plus gamma/2 psi^2 (R1 zero-centred on the data, R2 on
                    the fakes; in the Dirac-GAN D's input gradient is psi everywhere, so the two
                    coincide): converge
    instance_noise  the standard loss with N(0, sigma^2) noise on both of D's inputs, its
                    expectation taken by Gauss-Hermite quadrature: converges
    consensus       consensus optimization (Mescheder, Nowozin & Geiger 2017): each player also
                    descends gamma/2 ||v||^2, v = (dL_G/dtheta, dL_D/dpsi) the joint vector
                    field, through a double backward: converges
    extragradient   the minimax loss with extragradient steps (Korpelevich 1976; Gidel et al.
                    2019): a look-ahead step, then the step from the start with the look-ahead's
                    gradients; simultaneous EG contracts by sqrt((1 - h^2/4)^2 + h^2/4) per step
                    near the equilibrium
    optimistic      the minimax loss with optimistic steps (Daskalakis et al. 2018): twice this
                    step's update minus the previous one

Extragradient and optimistic steps follow the same two update orders as the Trainer
(trainer.update): under alternating, G's gradient is taken at D's new psi in each pass.

    python scripts/dirac_gan.py --out outputs/dirac

Writes DIR/dirac.csv (method,update,step,theta,psi) and DIR/dirac.png (each method's vector
field with both trajectories), and prints each method's final distance to the equilibrium.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from ganopt.arguments import output_dir, save_figure, written
from ganopt.losses import NonSaturatingLoss, StandardLoss, WassersteinLoss
from ganopt.rundir import WriteError
from ganopt.tables import add_table_argument, write_table

METHODS = (
    "standard",
    "nonsaturating",
    "wgan",
    "wgan_gp",
    "r1",
    "r2",
    "instance_noise",
    "consensus",
    "extragradient",
    "optimistic",
)
#: the methods that change the update rule, not the objective (the minimax loss's)
RULES = {"extragradient": "extra", "optimistic": "optimistic"}
UPDATES = ("simultaneous", "alternating")

#: (D's loss, G's loss) as functions of (theta, psi); both players minimize their own
Objectives = tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]


def objectives(method: str, gamma: float, lam: float, sigma: float, nodes: int) -> Objectives:
    zero = torch.zeros((), dtype=torch.float64)
    if method == "instance_noise":
        # E over eps ~ N(0, sigma^2) of the losses at noisy inputs: D sees eps (real) and
        # theta + eps (fake); probabilists' Gauss-Hermite nodes and weights
        points, weights = np.polynomial.hermite_e.hermegauss(nodes)
        eps = torch.tensor(points * sigma, dtype=torch.float64)
        w = torch.tensor(weights / weights.sum(), dtype=torch.float64)
        # StandardLoss's per-sample terms (softplus forms), weighted by the quadrature

        def d_loss(theta: Tensor, psi: Tensor) -> Tensor:
            per_node = F.softplus(-psi * eps) + F.softplus(psi * (theta + eps))
            return (w * per_node).sum()

        def g_loss(theta: Tensor, psi: Tensor) -> Tensor:
            return -(w * F.softplus(psi * (theta + eps))).sum()

        return d_loss, g_loss

    base = {
        "standard": StandardLoss(),
        "nonsaturating": NonSaturatingLoss(),
        "wgan": WassersteinLoss(),
        "wgan_gp": WassersteinLoss(),
        "r1": StandardLoss(),
        "r2": StandardLoss(),
        "consensus": StandardLoss(),
        "extragradient": StandardLoss(),
        "optimistic": StandardLoss(),
    }[method]

    def d_loss(theta: Tensor, psi: Tensor) -> Tensor:
        value = base.d_loss(zero.reshape(1), (psi * theta).reshape(1))
        if method == "wgan_gp":
            value = value + lam * (psi.abs() - 1) ** 2
        if method in ("r1", "r2"):  # gamma/2 ||grad_x D||^2 at the data or the fake: psi^2
            value = value + gamma / 2 * psi**2
        return value

    def g_loss(theta: Tensor, psi: Tensor) -> Tensor:
        return base.g_loss((psi * theta).reshape(1))

    return d_loss, g_loss


def field(method: str, objectives_: Objectives, theta: float, psi: float, gamma: float):
    """The players' gradients (dL_G/dtheta, dL_D/dpsi) at (theta, psi); for consensus
    optimization, plus gamma times the gradient of 1/2 ||v||^2 (a double backward)."""
    d_loss, g_loss = objectives_
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(psi, dtype=torch.float64, requires_grad=True)
    consensus = method == "consensus"
    (g_theta,) = torch.autograd.grad(g_loss(t, p), t, create_graph=consensus)
    (g_psi,) = torch.autograd.grad(d_loss(t, p), p, create_graph=consensus)
    if consensus:
        reg_theta, reg_psi = torch.autograd.grad((g_theta**2 + g_psi**2) / 2, (t, p))
        g_theta, g_psi = g_theta + gamma * reg_theta, g_psi + gamma * reg_psi
    return float(g_theta.detach()), float(g_psi.detach())


def run(
    method: str,
    update: str,
    steps: int,
    lr: float,
    start: tuple[float, float],
    gamma: float,
    lam: float,
    sigma: float,
    clip: float,
    nodes: int = 24,
) -> list[tuple[float, float]]:
    """The (theta, psi) trajectory, ``steps + 1`` points from ``start``."""
    objectives_ = objectives(method, gamma, lam, sigma, nodes)
    rule = RULES.get(method, "gradient")
    previous = [0.0, 0.0]  # each player's last update, for optimism

    def move(player: int, update_: float) -> float:
        if rule != "optimistic":
            return update_
        step, previous[player] = 2 * update_ - previous[player], update_
        return step

    def play(at: tuple[float, float], start_: tuple[float, float]) -> tuple[float, float]:
        """Both players' steps from ``start_`` with the gradients at ``at``; under alternating
        G's gradient is taken at D's new psi."""
        g_theta, g_psi = field(method, objectives_, *at, gamma)
        new_psi = start_[1] + move(1, -lr * g_psi)
        if method == "wgan":
            new_psi = max(-clip, min(clip, new_psi))
        if update == "alternating":  # G answers the D that has just moved
            g_theta, _ = field(method, objectives_, at[0], new_psi, gamma)
        return start_[0] + move(0, -lr * g_theta), new_psi

    point = start
    path = [point]
    for _ in range(steps):
        at = play(point, point) if rule == "extra" else point  # extragradient's look-ahead
        point = play(at, point)
        if not all(math.isfinite(x) for x in point):
            break
        path.append(point)
    return path


def rate(path: list[tuple[float, float]]) -> float:
    """The radius's factor per step over the second half of the path: < 1 converges."""
    half = len(path) // 2
    first, last = math.hypot(*path[half]), math.hypot(*path[-1])
    if first == 0 or len(path) - 1 == half:
        return math.nan
    return (last / first) ** (1 / (len(path) - 1 - half))


def vector_field(method: str, args: argparse.Namespace, lim: float, n: int = 17):
    objectives_ = objectives(method, args.gamma, args.lam, args.sigma, 24)
    axis = np.linspace(-lim, lim, n)
    u = np.zeros((n, n))
    v = np.zeros((n, n))
    for i, psi in enumerate(axis):
        for j, theta in enumerate(axis):
            g_theta, g_psi = field(method, objectives_, theta, psi, args.gamma)
            u[i, j], v[i, j] = -g_theta, -g_psi
    return axis, u, v


def plot(
    paths: dict[tuple[str, str], list[tuple[float, float]]], args: argparse.Namespace, path: Path
) -> None:
    fig = Figure(figsize=(18.75, 7.5), layout="constrained")
    for k, method in enumerate(METHODS):
        ax = fig.add_subplot(2, 5, k + 1)
        lim = 2.0
        axis, u, v = vector_field(method, args, lim)
        ax.quiver(axis, axis, u, v, color="#999999", angles="xy", width=0.004)
        for update, color in zip(UPDATES, ("#cc3311", "#0077bb"), strict=True):
            points = np.array(paths[(method, update)])
            ax.plot(points[:, 0], points[:, 1], color=color, lw=1.2, label=update)
        ax.plot([1], [1], "ko", ms=4)
        ax.plot([0], [0], "k*", ms=9)
        ax.set(
            xlim=(-lim, lim),
            ylim=(-lim, lim),
            aspect="equal",
            title=method,
            xlabel=r"$\theta$ (generator)",
            ylabel=r"$\psi$ (discriminator)",
        )
        if k == 0:
            ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(
        f"Dirac-GAN from (1, 1), {args.steps} steps of size {args.lr} (Mescheder et al. 2018)"
    )
    save_figure(fig, path, 110)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/dirac"))
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=0.1, help="gradient step size h")
    p.add_argument("--gamma", type=float, default=1.0, help="R1, R2 and consensus weight")
    p.add_argument("--lam", type=float, default=1.0, help="WGAN-GP weight")
    p.add_argument("--sigma", type=float, default=1.0, help="instance noise std")
    p.add_argument("--clip", type=float, default=1.0, help="WGAN's bound on |psi|")
    add_table_argument(p)
    args = p.parse_args(argv)
    if args.steps < 1 or min(args.lr, args.gamma, args.lam, args.sigma, args.clip) <= 0:
        p.error("--steps must be >= 1 and --lr, --gamma, --lam, --sigma, --clip > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        output_dir(args.out)
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = {
        (method, update): run(
            method,
            update,
            args.steps,
            args.lr,
            (1.0, 1.0),
            args.gamma,
            args.lam,
            args.sigma,
            args.clip,
        )
        for method in METHODS
        for update in UPDATES
    }
    with written(args.out / "dirac.csv") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "update", "step", "theta", "psi"])
        for (method, update), points in paths.items():
            writer.writerows(
                (method, update, i, f"{t:.8g}", f"{p:.8g}") for i, (t, p) in enumerate(points)
            )
    plot(paths, args, args.out / "dirac.png")
    lines = [
        f"| method | update | distance to (0, 0) after {args.steps} steps | radius factor per "
        f"step (second half) |\n|---|---|---|---|"
    ]
    for (method, update), points in paths.items():
        theta, psi = points[-1]
        note = "" if len(points) == args.steps + 1 else f" (diverged at step {len(points)})"
        lines.append(
            f"| {method} | {update} | {math.hypot(theta, psi):.3g}{note} | {rate(points):.5f} |"
        )
    print("\n".join(lines))
    print(f"\nwrote {args.out / 'dirac.csv'} and {args.out / 'dirac.png'}")
    write_table(args.table, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
