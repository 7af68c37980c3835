"""Gulrajani et al. (2017), Fig. 1b: with weight clipping, a deep critic's gradients explode or
vanish with depth; with the gradient penalty they do not.

A 12-layer ReLU MLP critic is trained with the WGAN loss on the 2-D Swiss roll against a fixed
generator, once per Lipschitz constraint: weight clipping at c in {0.1, 0.01, 0.001} (RMSProp,
as in WGAN) and the gradient penalty (lambda = 10, Adam, as in WGAN-GP). Then, on a fresh batch,
the norm of the critic loss's gradient with respect to each layer's activations is measured:
with clipping it changes by a roughly constant factor per layer (a straight line on the log
plot), with the penalty it stays within about an order of magnitude.

    python scripts/clipping_depth.py --out outputs/clipping_depth

Writes DIR/clipping_depth.csv (constraint,layer,grad_norm) and DIR/clipping_depth.png.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ganopt.arguments import output_dir, save_figure, written
from ganopt.clipping import WeightClipper
from ganopt.data import SwissRoll
from ganopt.losses import WassersteinLoss
from ganopt.models import MLPDiscriminator, MLPGenerator
from ganopt.objective import Objective
from ganopt.regularizers import wgan_gp
from ganopt.rundir import WriteError
from ganopt.setup.assembly import seed_everything
from ganopt.tables import add_table_argument, write_table

CLIP_BOUNDS = (0.1, 0.01, 0.001)


def activation_grad_norms(critic: MLPDiscriminator, real: Tensor, fake: Tensor) -> list[float]:
    """||∂L/∂h_l|| for the output h_l of each hidden layer l = 1..L, L the WGAN critic loss."""
    activations: list[Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        output.retain_grad()
        activations.append(output)

    hooks = [
        m.register_forward_hook(keep)
        for name, m in critic.named_children()
        if name.startswith("act")
    ]
    try:
        loss = WassersteinLoss().d_loss(critic(real), critic(fake))
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    layers = len(hooks)

    def norm(grad: Tensor) -> float:
        # in float64: at c = 0.001 the entries (~1e-26) are fine in float32, their squares not
        return grad.double().norm().item()

    # each hidden layer ran twice (real, then fake): the gradient is the sum of both passes
    return [
        math.hypot(norm(activations[i].grad), norm(activations[i + layers].grad))
        for i in range(layers)
    ]


def train_critic(
    constraint: str, args: argparse.Namespace, G: nn.Module, data: SwissRoll
) -> MLPDiscriminator:
    seed_everything(args.seed)  # the same initial critic and data for every constraint
    critic = MLPDiscriminator((2,), [args.width] * args.depth)
    if constraint == "gp":
        opt = torch.optim.Adam(critic.parameters(), lr=args.gp_lr, betas=(0.5, 0.9))
        objective, clipper = Objective(WassersteinLoss(), [wgan_gp(10.0)]), None
    else:
        opt = torch.optim.RMSprop(critic.parameters(), lr=args.clip_lr)
        objective = Objective(WassersteinLoss())
        clipper = WeightClipper(critic.parameters(), float(constraint))
        clipper()
    for it in range(1, args.iters + 1):  # the Trainer's D phase: the objective's D pass
        real = next(data)
        d = objective.d_pass(G, critic, real, torch.randn(args.batch_size, G.z_dim), it, critic)
        opt.zero_grad(set_to_none=True)
        d.objective.backward()
        opt.step()
        if clipper is not None:
            clipper()
    return critic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/clipping_depth"))
    p.add_argument("--depth", type=int, default=12, help="hidden layers of the critic")
    p.add_argument("--width", type=int, default=256, help="units per hidden layer")
    p.add_argument("--iters", type=int, default=200, help="critic training iterations")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--clip-lr", type=float, default=1e-3, help="RMSProp lr with clipping")
    p.add_argument("--gp-lr", type=float, default=1e-4, help="Adam lr with the penalty")
    p.add_argument("--seed", type=int, default=0)
    add_table_argument(p)
    args = p.parse_args(argv)
    if min(args.depth, args.width, args.iters, args.batch_size) < 1:
        p.error("--depth, --width, --iters and --batch-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        output_dir(args.out)
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    G = MLPGenerator(2, (2,), [128, 128, 128]).requires_grad_(False)  # fixed, untrained
    data = SwissRoll(args.batch_size)
    results: dict[str, list[float]] = {}
    for constraint in [*(str(c) for c in CLIP_BOUNDS), "gp"]:
        print(f"critic with {constraint}: {args.iters} iterations ...", file=sys.stderr)
        critic = train_critic(constraint, args, G, data)
        torch.manual_seed(args.seed + 1)  # one fresh batch, the same for every constraint
        real, fake = data.sample(args.batch_size), G(torch.randn(args.batch_size, G.z_dim))
        results[constraint] = activation_grad_norms(critic, real, fake)

    with written(args.out / "clipping_depth.csv") as f:
        writer = csv.writer(f)
        writer.writerow(["constraint", "layer", "grad_norm"])
        for constraint, norms in results.items():
            writer.writerows((constraint, i, f"{n:.6e}") for i, n in enumerate(norms, start=1))

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for constraint, norms in results.items():
        label = "gradient penalty" if constraint == "gp" else f"weight clipping c = {constraint}"
        ax.plot(range(1, len(norms) + 1), norms, marker="o", ms=3, label=label)
    ax.set(
        yscale="log",
        xlabel="critic layer",
        ylabel="gradient norm (log scale)",
        title=f"{args.depth}-layer ReLU critic on the Swiss roll (Gulrajani et al. 2017, Fig. 1b)",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, args.out / "clipping_depth.png", 120)

    lines = ["| constraint | layer 1 | layer L | max / min over layers |\n|---|---|---|---|"]
    for constraint, norms in results.items():
        spread = max(norms) / min(norms)
        lines.append(f"| {constraint} | {norms[0]:.3g} | {norms[-1]:.3g} | {spread:.3g} |")
    print("\n".join(lines))
    print(f"\nwrote {args.out / 'clipping_depth.csv'} and {args.out / 'clipping_depth.png'}")
    write_table(args.table, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
