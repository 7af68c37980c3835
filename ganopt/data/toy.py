"""2-D toy distributions, sampled directly on the training device.

Nothing is read from disk or copied from the host per step: each batch is a couple of
kernels on the device, so the data never stalls the loop.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor


class ToyDistribution(ABC):
    """An infinite iterator of ``(batch_size, 2)`` batches; ``sample(n)`` draws any number."""

    shape: tuple[int, ...] = (2,)
    #: what the data is, declared for the parts that draw or compare it: "points" (2-D, the
    #: contour figure and shadow losses) or "images" (sample grids)
    kind = "points"

    def __init__(self, batch_size: int, device: torch.device | str = "cpu") -> None:
        self.batch_size = int(batch_size)
        self.device = torch.device(device)

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples on the device; pass ``generator`` to leave the global RNG untouched."""

    @property
    def rng_device(self) -> torch.device:
        """Where a generator for ``sample(..., generator=)`` must live: the data's device."""
        return self.device

    def __iter__(self) -> ToyDistribution:
        return self

    def __next__(self) -> Tensor:
        return self.sample(self.batch_size)


class GaussianMixture(ToyDistribution):
    """Equal-weight isotropic Gaussians at ``centers`` with standard deviation ``std``."""

    def __init__(
        self,
        centers: Tensor,
        std: float,
        batch_size: int,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(batch_size, device)
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.centers = torch.as_tensor(centers, dtype=torch.float32, device=self.device)
        self.std = float(std)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        idx = torch.randint(len(self.centers), (n,), device=self.device, generator=generator)
        noise = torch.randn(n, 2, device=self.device, generator=generator)
        return self.centers[idx] + self.std * noise


class SwissRoll(ToyDistribution):
    """The 2-D Swiss roll of the WGAN-GP toy experiments: scikit-learn's
    ``make_swiss_roll(noise=0.25)`` projected on (x, z) and divided by 7.5."""

    def __init__(
        self,
        batch_size: int,
        noise: float = 0.25,
        scale: float = 7.5,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(batch_size, device)
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.noise = float(noise)
        self.scale = float(_check("scale", scale))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, device=self.device, generator=generator)
        t = 1.5 * math.pi * (1 + 2 * u)
        roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        noise = torch.randn(n, 2, device=self.device, generator=generator)
        return (roll + self.noise * noise) / self.scale


def _check(name: str, value: object, integer: bool = False) -> float:
    """A positive number (an int >= 1 where ``integer``), or ValueError naming it."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "an int >= 1" if integer else "a number > 0"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def ring(
    batch_size: int,
    n_modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    device: torch.device | str = "cpu",
) -> GaussianMixture:
    """``n_modes`` Gaussians evenly spaced on a circle (ring8: 8 modes, radius 2, std 0.02)."""
    _check("n_modes", n_modes, integer=True)
    _check("radius", radius)
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    centers = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(centers, std, batch_size, device)


def grid(
    batch_size: int,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    device: torch.device | str = "cpu",
) -> GaussianMixture:
    """A ``side × side`` grid of Gaussians centred on the origin (grid25: {-4,-2,0,2,4}²)."""
    _check("side", side, integer=True)
    _check("spacing", spacing)
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    centers = torch.cartesian_prod(coords, coords)
    return GaussianMixture(centers, std, batch_size, device)
