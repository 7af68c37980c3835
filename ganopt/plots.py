"""Figures of what G and D are doing, for TensorBoard and the run directory. What a figure
shows is computed on the training thread (:func:`toy_picture`); drawing it takes plain arrays
only, so that ganopt/drawing.py can draw it on another thread, and imports matplotlib when the
first figure is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from ganopt.data.toy import ToyDistribution
from ganopt.diagnostics.flow import GradientFlow
from ganopt.losses import GANLoss

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@torch.no_grad()
def _toy_points_and_surface(
    G: nn.Module,
    D: nn.Module,
    data: ToyDistribution,
    loss: GANLoss,
    n: int,
    seed: int,
    resolution: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Real and generated points from a private generator, and D's output (a probability where
    the loss has one) on a square grid that holds them: what the toy figure draws."""
    device = next(G.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    real = data.sample(n, generator=rng)
    z = torch.randn(n, G.z_dim, device=device, generator=rng)
    was_training = G.training, D.training
    G.eval()
    D.eval()
    try:
        fake = G(z)
        real_extent = real.abs().max()
        fake_extent = torch.quantile(fake.abs().max(dim=1).values, 0.98)
        lim = float(
            1.15 * torch.clamp(torch.maximum(real_extent, fake_extent), max=4 * real_extent)
        )
        axis = torch.linspace(-lim, lim, resolution, device=device)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")
        out = D(torch.stack([gx.flatten(), gy.flatten()], dim=1)).view(resolution, resolution)
        surface = torch.sigmoid(out) if loss.uses_sigmoid else out
    finally:
        G.train(was_training[0])
        D.train(was_training[1])
    return real, fake, axis, surface


@dataclass(frozen=True)
class ToyPicture:
    """What the 2-D figure draws, as host arrays: real and generated points, the grid's axis,
    D's output on it, and whether that output is a probability."""

    real: np.ndarray
    fake: np.ndarray
    axis: np.ndarray
    surface: np.ndarray
    probability: bool


def toy_picture(
    G: nn.Module,
    D: nn.Module,
    data: ToyDistribution,
    loss: GANLoss,
    n: int = 1000,
    seed: int = 0,
    resolution: int = 120,
) -> ToyPicture:
    """The 2-D figure's arrays. Sampling uses its own seeded generator, so that a figure never
    moves the training RNG and figures at different steps show the same z."""
    real, fake, axis, surface = _toy_points_and_surface(G, D, data, loss, n, seed, resolution)
    host = (t.cpu().numpy().copy() for t in (real, fake, axis, surface))
    return ToyPicture(*host, probability=loss.uses_sigmoid)


def toy_samples_figure(picture: ToyPicture, step: int) -> Figure:
    """Real vs. generated points over a contour of D's output, for 2-D data."""
    from matplotlib.figure import Figure

    p = picture
    lim = float(p.axis[-1])
    fig = Figure(figsize=(5.2, 4.6), dpi=100)  # a fixed layout draws in half the time
    fig.subplots_adjust(left=0.08, right=0.84, bottom=0.07, top=0.93)
    ax = fig.add_subplot()
    levels = np.linspace(0, 1, 11) if p.probability else 12
    contour = ax.contourf(p.axis, p.axis, p.surface, levels=levels, cmap="RdBu_r", alpha=0.55)
    fig.colorbar(contour, ax=ax, label="D(x) = sigmoid(logit)" if p.probability else "critic")
    ax.scatter(p.real[:, 0], p.real[:, 1], s=3, c="black", label="real", alpha=0.6)
    ax.scatter(p.fake[:, 0], p.fake[:, 1], s=3, c="#e8a000", label="generated", alpha=0.6)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=f"step {step}")
    ax.legend(loc="upper right", markerscale=3, fontsize=8)
    return fig


def image_grid(
    images: torch.Tensor, columns: int = 8, padding: int = 1, min_side: int = 32
) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] → one (rows·H, columns·W, 3) uint8 array with white
    gaps; small images are enlarged (nearest neighbour) to at least ``min_side`` pixels."""
    scale = max(1, -(-min_side // images.shape[-1]))
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    n, c, h, w = x.shape
    x = x.expand(-1, 3, -1, -1) if c == 1 else x[:, :3]
    rows = -(-n // columns)
    grid = torch.full(
        (3, rows * (h + padding) + padding, columns * (w + padding) + padding),
        255,
        dtype=torch.uint8,
    )
    for i, image in enumerate(x):
        top, left = (
            padding + (i // columns) * (h + padding),
            padding + (i % columns) * (w + padding),
        )
        grid[:, top : top + h, left : left + w] = image
    return grid.permute(1, 2, 0).numpy()


#: log10 of the gradient norms the heatmaps span, whatever the run (docs/tensorboard.md)
FLOW_SCALE = (-8.0, 2.0)


def gradient_flow_figure(flow: GradientFlow) -> Figure:
    """One network's per-layer gradient norms as a heatmap: layers from the output (top) to the
    input (bottom), log steps from left to right, on a fixed log10 colour scale (FLOW_SCALE;
    beyond it the extreme colours). A gradient that dies with depth or with time shows as a
    dark band or a dark end."""
    from matplotlib.figure import Figure

    matrix = flow.matrix()
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.where(matrix > 0, matrix, np.nan))
    names = flow.layers[::-1]
    fig = Figure(figsize=(7.0, 1.2 + 0.3 * len(names)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    low, high = FLOW_SCALE  # one scale for every run, so that colours compare across runs
    image = ax.imshow(
        logs, aspect="auto", cmap="viridis", interpolation="nearest", vmin=low, vmax=high
    )
    fig.colorbar(image, ax=ax, label="log10 ||grad||", fraction=0.05)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    shown = np.linspace(0, len(flow.steps) - 1, min(8, len(flow.steps))).round().astype(int)
    ax.set_xticks(shown, [str(flow.steps[i]) for i in shown], fontsize=7)
    ax.set_xlabel("generator step")
    ax.set_ylabel("layer (output at the top)")
    ax.set_title(f"gradient flow through {flow.network}", fontsize=9)
    return fig


def spectrum_figure(eigenvalues: np.ndarray, step: int) -> Figure:
    """The top eigenvalues of the Jacobian of -v in the complex plane: left of the imaginary
    axis they attract, above and below the real axis they rotate."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 4.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.scatter(eigenvalues.real, eigenvalues.imag, color="C3", zorder=3)
    reach = max(float(np.abs(eigenvalues).max(initial=0.0)), 1e-12) * 1.15
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"step {step}: top eigenvalues of ∂(-v)/∂w", fontsize=9)
    return fig
