"""Mode coverage on Gaussian mixtures (the VEEGAN / PacGAN protocol)."""

from __future__ import annotations

import torch
from torch import Tensor


def mode_metrics(samples: Tensor, centers: Tensor, std: float) -> dict[str, float]:
    """``modes``: modes with at least one high-quality sample (within 3 std of it);
    ``hq_ratio``: share of samples within 3 std of their nearest mode;
    ``kl``: KL(p || uniform) of the histogram p of samples' nearest modes (0 = balanced)."""
    distances = torch.cdist(samples.float(), centers.float())
    nearest = distances.min(dim=1)
    high_quality = nearest.values <= 3 * std
    k = len(centers)
    covered = torch.zeros(k, dtype=torch.bool, device=samples.device)
    covered[nearest.indices[high_quality]] = True
    return {
        "modes": float(covered.sum()),
        "hq_ratio": float(high_quality.float().mean()),
        "kl": uniform_kl(torch.bincount(nearest.indices, minlength=k)),
    }


def uniform_kl(counts: Tensor) -> float:
    """KL(p || uniform) of a histogram of counts: 0 when balanced, log(K) when all mass is in
    one of the K bins."""
    p = counts.double() / counts.sum()
    nonzero = p[p > 0]
    return float((nonzero * (nonzero * len(counts)).log()).sum())
