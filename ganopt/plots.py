"""What the figures of G and D show, computed from the networks on the training thread as
host arrays: the 2-D picture (points and D's surface) and the image grid. Drawing them is
ganopt/rendering.py's, away from the training thread."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ganopt.data.toy import ToyDistribution
from ganopt.losses import GANLoss
from ganopt.rendering import ToyPicture


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
