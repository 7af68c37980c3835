"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
the same random, differentiable transformations applied to every image D sees, real and
generated alike, in D's step and in G's, so that D cannot memorize the few real images it is
shown while G still learns the untransformed distribution (docs/limited_data.md).

Each operation transforms every sample of a batch with its own random draw, taken from the
global torch RNG on the input's device: a run stays a function of ``trainer.seed``, resume
restores it, and nothing waits for the device. Every operation is differentiable in its input
(the color ones smoothly; translation and cutout move or zero pixels, so their gradient is the
same move or mask), which is what lets G's gradient pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(x: Tensor) -> Tensor:
    """One U[0, 1) number per sample, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def brightness(x: Tensor) -> Tensor:
    """Adds U - 0.5 (U ~ U[0, 1)) to every pixel of a sample."""
    return x + (_uniform(x) - 0.5)


def saturation(x: Tensor) -> Tensor:
    """Scales each pixel's distance from its mean over channels by 2U: from gray (0) to twice
    as saturated (2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (2 * _uniform(x)) + mean


def contrast(x: Tensor) -> Tensor:
    """Scales each sample's distance from its mean over all pixels and channels by U + 0.5."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def translation(x: Tensor) -> Tensor:
    """Shifts each sample by a whole number of pixels, up to 1/8 of its height (vertically) and
    width (horizontally), each uniform; what moves in from outside is 0.

    Output pixel (i, j) is input pixel (i + dy, j + dx) (0 outside the image), with dy drawn
    first, then dx."""
    n, _, h, w = x.shape
    max_dy, max_dx = h // 8, w // 8
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1), device=x.device)
    padded = F.pad(x, (max_dx, max_dx, max_dy, max_dy))
    rows = torch.arange(h, device=x.device) + max_dy + dy  # (n, h): rows of ``padded``
    cols = torch.arange(w, device=x.device) + max_dx + dx  # (n, w)
    c, wide = x.shape[1], padded.shape[3]
    picked = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, wide))
    return picked.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def cutout(x: Tensor) -> Tensor:
    """Sets a square of half the image's height and width to 0 in every channel, centred at a
    uniform position (its centre row in 0..h, or 0..h-1 for an odd square side; the same for
    columns, drawn second), so that it may reach past the border."""
    n, _, h, w = x.shape
    size_h, size_w = h // 2, w // 2
    centre_r = torch.randint(0, h + 1 - size_h % 2, (n, 1, 1), device=x.device)
    centre_c = torch.randint(0, w + 1 - size_w % 2, (n, 1, 1), device=x.device)
    top, left = centre_r - size_h // 2, centre_c - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


#: each policy's operations, applied in this order
POLICIES: dict[str, tuple[Callable[[Tensor], Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str | Sequence[str]) -> list[str]:
    """The names in ``"color,translation,cutout"`` (or in a list), each a key of POLICIES;
    ValueError in one line for an unknown or missing one."""
    if not isinstance(policy, (str, list, tuple)):
        raise ValueError(f"policy must be names separated by commas, got {policy!r}")
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [str(name).strip() for name in names]
    choices = ", ".join(POLICIES)
    if not names or not all(names):
        raise ValueError(f"policy {policy!r} names no augmentation; choose from {choices}")
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(
            f"no augmentation {unknown[0]!r} in policy {','.join(names)!r}; choose from {choices}"
        )
    return names


class DiffAugment:
    """``aug=diffaugment``: the policy's operations, in its order, on a batch (N, C, H, W)."""

    def __init__(self, policy: str | Sequence[str] = "color,translation,cutout") -> None:
        self.policy = parse_policy(policy)
        self.operations = [op for name in self.policy for op in POLICIES[name]]

    def __call__(self, x: Tensor) -> Tensor:
        for operation in self.operations:
            x = operation(x)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment(policy={','.join(self.policy)!r})"
