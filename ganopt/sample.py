"""Draw samples from a run's final generator, for evaluation with your own tools.

    ganopt-sample RUN_DIR --n 2500 --out samples.npy       # (N, 2) for toy data
    ganopt-sample RUN_DIR --n 10000 --out samples.npy      # (N, C, H, W) in [-1, 1] for images
    ganopt-sample RUN_DIR --n 64 --out grid.png --grid     # images as one PNG grid
    python -m ganopt.sample ...                           # the same

The generator is rebuilt from the run's recorded config (.hydra/config.yaml, checked as any
config is: it names registered components and sets values, never code) and loaded from
its newest checkpoint (checkpoints/last.pt, or a checkpoint file given instead of RUN_DIR),
with its EMA weights when the run kept them. Latents come from a private generator seeded with
--seed (default: the run's trainer.seed) in chunks of 500, exactly as the run's own evaluation
draws them: on the run's device, `ganopt-sample RUN --n 2500` returns the very samples behind
the run's final `modes`, `hq_ratio` and `kl`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganopt.checkpoint import CheckpointError, load
from ganopt.config import ConfigError
from ganopt.evaluation import generate
from ganopt.plots import image_grid
from ganopt.run_record import locate, recorded_config
from ganopt.setup.assembly import build_generator
from ganopt.setup.device import resolve_device


class SampleError(Exception):
    """Bad input: reported in one line, exit code 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ganopt-sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="a run directory, or a checkpoint inside one")
    parser.add_argument("--n", type=int, default=2500, help="number of samples (2500)")
    parser.add_argument("--out", type=Path, required=True, help="a .npy file (or .png, --grid)")
    parser.add_argument("--seed", type=int, default=None, help="latent seed (the run's seed)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (the run's device)")
    parser.add_argument("--grid", action="store_true", help="images: one PNG grid, 8 per row")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    return args


def device_for(spec: str) -> torch.device:
    """--device as a torch device this machine has."""
    try:
        return resolve_device(spec)
    except ConfigError as e:
        raise SampleError("--device: " + e.problems[0].removeprefix("trainer.device: ")) from None


def load_generator(run: Path, device: torch.device | None) -> tuple[torch.nn.Module, int]:
    """The run's final generator (EMA weights when kept) in eval mode on ``device`` (default:
    the run's own), and the run's seed."""
    try:
        run_dir, checkpoint = locate(run)
    except ConfigError as e:
        raise SampleError(e.problems[0].removeprefix("resume: ")) from None
    try:
        cfg = recorded_config(run_dir)
    except ConfigError as e:
        raise SampleError(f"cannot read the run's config: {e.problems[0]}") from None
    try:
        state = load(checkpoint)
        target = device or _run_device(str(cfg.trainer.device))
        G = build_generator(cfg, tuple(state["data_shape"]), target)
        G.load_state_dict(state["G_ema"] if "G_ema" in state else state["G"])
    except (CheckpointError, ConfigError, KeyError, RuntimeError, ValueError) as e:
        raise SampleError(f"cannot load the generator from {checkpoint}: {e}") from None
    return G.eval().requires_grad_(False), int(cfg.trainer.seed)


def check_writable(out: Path) -> None:
    """Refuse an --out whose directory cannot be made or written, before generating."""
    existing = out.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SampleError(f"cannot write {out}: {existing} is not a writable directory")
    if out.is_dir():
        raise SampleError(f"cannot write {out}: it is a directory")


def _run_device(spec: str) -> torch.device:
    try:
        return resolve_device(spec)
    except ConfigError:
        raise SampleError(
            f"the run trained on {spec!r}, which this machine does not have: pass --device cpu"
        ) from None


def write(samples: torch.Tensor, out: Path, grid: bool) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if grid:
            Image.fromarray(image_grid(samples)).save(out)
        else:
            np.save(out, samples.float().cpu().numpy())
    except OSError as e:  # what check_writable cannot see: a full disk, a special file system
        raise SampleError(f"cannot write {out}: {e.strerror or e}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.grid and args.out.suffix.lower() != ".png":
            raise SampleError(f"--grid writes a PNG: give --out a .png name, not {args.out}")
        if not args.grid and args.out.suffix.lower() != ".npy":
            raise SampleError(f"--out must end in .npy (or use --grid with a .png): {args.out}")
        check_writable(args.out)
        device = device_for(args.device) if args.device else None
        G, run_seed = load_generator(args.run, device)
        if args.grid and len(G.data_shape) != 3:
            raise SampleError("--grid is for image data; this run's samples are vectors")
        samples = generate(G, args.n, seed=run_seed if args.seed is None else args.seed)
        write(samples, args.out, args.grid)
    except SampleError as e:
        print(f"ganopt-sample: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} samples of shape {tuple(samples.shape[1:])} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
