"""Arjovsky & Bottou (2017), Fig. 2: the generator's gradient as the discriminator improves.

Freeze a generator (optionally trained first for --g-steps), then for each generator loss
train a fresh discriminator from scratch and, every few D iterations, measure
||∇_θG L_G|| on one fixed batch of z. As D approaches optimality on disjoint supports, the
saturating (true minimax) loss's gradient vanishes; the non-saturating one's does not.
(Standard and non-saturating share D's objective, so their fresh discriminators would be
identical: one is trained for both.)

    python scripts/vanishing_gradients.py                       # ring8, 4000 D iterations
    python scripts/vanishing_gradients.py --d-iters 2000 --losses standard,nonsaturating

Writes DIR/vanishing.csv (loss,d_iter,grad_norm), DIR/vanishing.png and TensorBoard events.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import math
import sys
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

from ganopt.arguments import output_dir, save_figure, written
from ganopt.clipping import WeightClipper
from ganopt.components import Components
from ganopt.composition import compose_config
from ganopt.config import ConfigError
from ganopt.logger import TensorBoardLogger
from ganopt.losses import GENERATOR_LOSSES, GANLoss
from ganopt.objective import Objective
from ganopt.rundir import WriteError
from ganopt.setup.assembly import build, make_trainer, seed_everything
from ganopt.tables import add_table_argument, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/vanishing"), help="output directory")
    p.add_argument("--d-iters", type=int, default=4000, help="D iterations per loss")
    p.add_argument(
        "--g-steps",
        type=int,
        default=0,
        help="train G first for this many steps (default config's loss and optim)",
    )
    p.add_argument(
        "--losses",
        default="standard,nonsaturating,wgan",
        help=f"comma-separated, from {', '.join(GENERATOR_LOSSES)}",
    )
    p.add_argument("--data", default="ring8", help="a data= config option")
    p.add_argument("--model", default="mlp", help="a model= config option (dcgan for images)")
    p.add_argument("--every", type=int, default=10, help="measure every N D iterations")
    p.add_argument("--d-lr", type=float, default=1e-3, help="Adam learning rate of each fresh D")
    p.add_argument(
        "--clip",
        type=float,
        default=0.01,
        help="weight clipping of the WGAN critic (a critic needs its constraint)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    add_table_argument(p)
    args = p.parse_args(argv)
    args.losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    unknown = [n for n in args.losses if n not in GENERATOR_LOSSES]
    if unknown:
        p.error(f"unknown loss {unknown}; choose from {', '.join(GENERATOR_LOSSES)}")
    for name in ("d_iters", "every", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.g_steps < 0 or args.d_lr <= 0 or args.clip <= 0:
        p.error("--g-steps must be >= 0, --d-lr and --clip > 0")
    return args


def build_parts(args: argparse.Namespace) -> Components:
    overrides = [
        f"data={args.data}",
        f"model={args.model}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.seed={args.seed}",
        f"trainer.device={args.device}",
        "trainer.progress=false",
    ]
    return build(compose_config(overrides))


def pretrain_generator(parts: Components, steps: int, out: Path) -> None:
    """Train G (and a throwaway D) with the default loss and optimizers, as a normal run."""
    settings = dataclasses.replace(parts.settings, steps=steps)
    logger = TensorBoardLogger(out / "pretrain")
    try:
        make_trainer(dataclasses.replace(parts, settings=settings), out / "pretrain", logger).fit()
    finally:
        logger.close()


def generator_grad_norm(
    G: nn.Module, D: nn.Module, loss: GANLoss, z: torch.Tensor, real: torch.Tensor
) -> float:
    """||∇_θG L_G|| on the batch z (and, for a relativistic loss, the real batch), through D
    without touching D's gradients: the Trainer's G pass."""
    D.requires_grad_(False)
    G.zero_grad(set_to_none=True)
    real = real if loss.uses_real_in_g else None
    Objective(loss).g_pass(G, D, z, step=0, real=real).objective.backward()
    D.requires_grad_(True)
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    return math.sqrt(sum(g.pow(2).sum().item() for g in grads))


def measure(
    parts: Components,
    D0: nn.Module,
    losses: list[GANLoss],
    args: argparse.Namespace,
    z_fixed: torch.Tensor,
    logger: TensorBoardLogger,
) -> dict[str, list[tuple[int, float]]]:
    """Train a fresh copy of D0 against the frozen G with the D objective these generator
    losses share; every args.every iterations, G's gradient norm under each of them."""
    seed_everything(args.seed)  # every D sees the same initialisation and data stream
    G, D, d_objective = parts.G, copy.deepcopy(D0), losses[0]
    opt = torch.optim.Adam(D.parameters(), lr=args.d_lr)
    clipper = (
        WeightClipper(D.parameters(), args.clip) if d_objective.estimates_wasserstein else None
    )
    if clipper is not None:
        clipper()  # the critic lives in the clipped set from the start
    series: dict[str, list[tuple[int, float]]] = {loss.name: [] for loss in losses}
    rng = torch.Generator(device=parts.data.rng_device).manual_seed(args.seed)
    real_fixed = parts.data.sample(len(z_fixed), generator=rng)  # for relativistic G losses
    for it in range(args.d_iters + 1):
        if it % args.every == 0 or it == args.d_iters:
            for loss in losses:
                norm = generator_grad_norm(G, D, loss, z_fixed, real_fixed)
                series[loss.name].append((it, norm))
                logger.scalars(it, {f"vanishing/grad_norm_G/{loss.name}": norm})
        if it == args.d_iters:
            break
        z = torch.randn(args.batch_size, G.z_dim, device=z_fixed.device)
        d = Objective(d_objective).d_pass(G, D, next(parts.data), z, it + 1, D)  # the D phase
        opt.zero_grad(set_to_none=True)
        d.objective.backward()
        opt.step()
        if clipper is not None:
            clipper()
    return series


def by_d_objective(names: list[str]) -> list[list[GANLoss]]:
    """Generator losses whose discriminators train identically (same D loss, same seed):
    standard and non-saturating share one; a fresh D trained once serves both."""
    groups: dict[object, list[GANLoss]] = {}
    for name in names:
        loss = GENERATOR_LOSSES[name]()
        groups.setdefault(type(loss).d_loss, []).append(loss)
    return list(groups.values())


def plot(results: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, series in results.items():
        its, norms = zip(*series, strict=True)
        ax.plot(its, [max(n, 1e-30) for n in norms], label=name)
    ax.set(
        yscale="log",
        xlabel="discriminator iterations",
        title=title,
        ylabel=r"$\|\nabla_{\theta_G} L_G\|$ (fixed G, fixed z)",
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    save_figure(fig, path, 120)


def results_table(results: dict[str, list[tuple[int, float]]]) -> str:
    """The table of docs/reproductions.md: ||grad G|| at D iterations 0, 100, 1000 and the
    last, and how many orders of magnitude the last is below the peak."""
    last = max(it for series in results.values() for it, _ in series)
    shown = sorted({it for it in (0, 100, 1000) if it < last} | {last})
    header = ["loss", *(f"D iteration {it}" for it in shown), "orders below its peak at the end"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, series in results.items():
        at = dict(series)
        norms = list(at.values())
        drop = math.log10(max(norms) / norms[-1]) if norms[-1] > 0 else math.inf
        cells = [f"{at[it]:.2g}" if it in at else "" for it in shown]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {drop:.1f} |")
    return "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        parts = build_parts(args)
        output_dir(args.out)
    except (ConfigError, WriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    D0 = copy.deepcopy(parts.D)  # the from-scratch D, before any pretraining touches it
    if args.g_steps:
        print(f"training G for {args.g_steps} steps ...", file=sys.stderr)
        pretrain_generator(parts, args.g_steps, args.out)
    parts.G.eval()
    z_fixed = torch.randn(
        args.batch_size,
        parts.G.z_dim,
        device=parts.device,
        generator=torch.Generator(parts.device).manual_seed(args.seed + 1),
    )

    logger = TensorBoardLogger(args.out)
    results = {}
    try:
        for losses in by_d_objective(args.losses):
            names = ", ".join(loss.name for loss in losses)
            print(f"{names}: training a fresh D for {args.d_iters} iterations ...", file=sys.stderr)
            results |= measure(parts, D0, losses, args, z_fixed, logger)
    finally:
        logger.close()

    with written(args.out / "vanishing.csv") as f:
        writer = csv.writer(f)
        writer.writerow(["loss", "d_iter", "grad_norm"])
        for name, series in results.items():
            writer.writerows((name, it, f"{norm:.6e}") for it, norm in series)
    plot(
        results,
        args.out / "vanishing.png",
        f"G fixed after {args.g_steps} steps, D trained from scratch ({args.data})",
    )

    print(results_table(results))
    print(f"\nwrote {args.out / 'vanishing.csv'} and {args.out / 'vanishing.png'}")
    write_table(args.table, results_table(results), device=str(parts.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
