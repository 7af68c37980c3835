"""The path-angle plot of Berard et al. (2020), "A Closer Look at the Optimization Landscapes of
Generative Adversarial Networks", for one run.

Walks the straight line w(α) = w0 + α (w1 - w0) from the run's initial weights w0 (rebuilt from
its recorded config and seed, so no extra file is needed) to its final ones w1
(checkpoints/last.pt), past the end to α = --end, and at each point measures, on a fixed batch,
the game's vector field v = (∇θ L_G, ∇φ L_D):

- the cosine between v(w(α)) and the path w1 - w0, and
- ||v(w(α))||.

Near a minimum of a single loss the cosine crosses zero at α = 1 and the norm dips. Berard et
al.'s signature of rotation is a bump: the norm does not vanish at the end point and the cosine
swings around α = 1, because the field circles the point instead of pointing at it.

    python scripts/path_angle.py outputs/2026-11-30/14-05-09 --points 61 --end 1.2

Writes RUN/path_angle/ (or --out): path_angle.csv (alpha,cosine,field_norm),
path_angle.png, and TensorBoard events (path_angle/cosine, path_angle/field_norm with step =
α in percent). BatchNorm statistics and other buffers are the final checkpoint's throughout.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ganopt.arguments import output_dir
from ganopt.checkpoint import CheckpointError, load
from ganopt.composition import compose_config
from ganopt.config import ConfigError
from ganopt.diagnostics.game import GameProbe
from ganopt.logger import TensorBoardLogger
from ganopt.objective import player_gradients, trainable
from ganopt.run_record import locate, recorded_overrides
from ganopt.rundir import WriteError, check_run_dir, write_atomic
from ganopt.setup.assembly import build


def parameters(*modules: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for m in modules for p in trainable(m)])


def set_parameters(vector: torch.Tensor, *modules: nn.Module) -> None:
    params = [p for m in modules for p in trainable(m)]
    pieces = torch.split(vector, [p.numel() for p in params])
    with torch.no_grad():
        for p, piece in zip(params, pieces, strict=True):
            p.copy_(piece.view_as(p))


def probe_for(run: str, batch: int | None) -> tuple[GameProbe, torch.Tensor, torch.Tensor, Path]:
    """The run's networks at their initial weights (its config and seed rebuild them), the
    initial and final parameter vectors, and the run directory."""
    run_dir, checkpoint = locate(run)
    cfg = compose_config([*recorded_overrides(run_dir), "trainer.device=cpu"])
    parts = build(cfg)
    start = parameters(parts.G, parts.D)
    state = load(checkpoint)
    try:
        parts.G.load_state_dict(state["G"])
        parts.D.load_state_dict(state["D"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{checkpoint}: does not fit the run's networks ({e})") from None
    end = parameters(parts.G, parts.D)
    probe = GameProbe(
        objective=parts.objective,
        G=parts.G,
        D=parts.D,
        data=parts.data,
        batch_size=batch or parts.settings.batch_size,
        every=0,
        k=1,
        iters=1,
        seed=parts.settings.seed,
    )
    return probe, start, end, run_dir


def walk(probe: GameProbe, start: torch.Tensor, end: torch.Tensor, alphas: np.ndarray) -> list:
    path = end - start
    rows = []
    for alpha in alphas:
        set_parameters(start + float(alpha) * path, probe.G, probe.D)
        with probe.isolated():
            real, z = probe.fixed_batch()
            losses = probe.objective.game_losses(probe.G, probe.D, real, z, step=0)
            field = player_gradients(losses, (probe.G, probe.D), create_graph=False)
        v = torch.cat([g.detach().reshape(-1) for g in field]).double()
        norm = v.norm().item()
        cosine = (v @ path.double()).item() / (norm * path.double().norm().item() or 1.0)
        rows.append((float(alpha), cosine, norm))
    set_parameters(end, probe.G, probe.D)
    return rows


def plot(rows: list, title: str) -> Figure:
    alpha, cosine, norm = (np.array(c) for c in zip(*rows, strict=True))
    fig = Figure(figsize=(6.0, 4.5), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(alpha, cosine, color="C0")
    top.axhline(0, color="0.7", lw=0.8)
    top.set_ylabel("cos(v, w1 - w0)")
    top.set_title(title, fontsize=9)
    bottom.semilogy(alpha, norm, color="C3")
    bottom.set_ylabel("||v||")
    bottom.set_xlabel("α along the path (0: initial weights, 1: final)")
    for ax in (top, bottom):
        ax.axvline(1.0, color="0.5", ls="--", lw=0.8)
    return fig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run directory (or a checkpoint inside its checkpoints/)")
    parser.add_argument("--points", type=int, default=61, help="points along the path")
    parser.add_argument("--end", type=float, default=1.2, help="the last α (past 1: beyond w1)")
    parser.add_argument("--batch", type=int, default=None, help="batch (default: the run's)")
    parser.add_argument("--out", type=Path, default=None, help="default: RUN/path_angle")
    args = parser.parse_args(argv)
    if args.points < 2:
        parser.error("--points must be at least 2")
    if not (np.isfinite(args.end) and args.end > 0):
        parser.error("--end must be a finite number > 0")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        probe, start, end, run_dir = probe_for(args.run, args.batch)
        if args.out is None:  # into the run directory: by its rules, never through a symlink
            check_run_dir(run_dir)
        out = output_dir(args.out or run_dir / "path_angle", in_run=args.out is None)
    except (ConfigError, CheckpointError, WriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = walk(probe, start, end, np.linspace(0.0, args.end, args.points))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["alpha", "cosine", "field_norm"])
    writer.writerows(rows)
    figure = plot(rows, f"path angle: {run_dir.name}")
    try:
        write_atomic(out / "path_angle.csv", lambda f: f.write(table.getvalue().encode()))
        write_atomic(out / "path_angle.png", lambda f: figure.savefig(f, format="png"))
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    logger = TensorBoardLogger(out)
    for alpha, cosine, norm in rows:
        step = round(alpha * 100)
        logger.scalars(step, {"path_angle/cosine": cosine, "path_angle/field_norm": norm})
    logger.close()
    at_end = min(rows, key=lambda r: abs(r[0] - 1.0))
    print(
        f"at the end point (alpha={at_end[0]:.3g}): cosine {at_end[1]:.3g}, ||v|| {at_end[2]:.3g}"
    )
    print(f"wrote {out / 'path_angle.csv'} and {out / 'path_angle.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
