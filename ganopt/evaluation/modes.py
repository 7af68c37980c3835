"""Mode coverage on Gaussian mixtures, as PacGAN's code measures it (Lin et al. 2018, whose
protocol follows VEEGAN's): every sample is assigned to its nearest mode, and it is
*high quality* when it lies within 3 standard deviations of that mode."""

from __future__ import annotations

import torch
from torch import Tensor

#: a sample within this many standard deviations of its nearest mode is high quality
HQ_STDS = 3.0


def mode_metrics(samples: Tensor, centers: Tensor, std: float) -> dict[str, float | None]:
    """``modes``: modes with at least one high-quality sample;
    ``hq_ratio``: the share of high-quality samples among all samples;
    ``kl``: KL(p ‖ uniform) of the histogram p of the high-quality samples' modes — samples
    between modes are left out, so the floor is log(K / modes) when ``modes`` of the K modes
    are covered. None when no sample is high quality (p does not exist)."""
    distances = torch.cdist(samples.float(), centers.float())
    nearest = distances.min(dim=1)
    high_quality = nearest.values < HQ_STDS * std
    counts = torch.bincount(nearest.indices[high_quality], minlength=len(centers))
    return {
        "modes": float((counts > 0).sum()),
        "hq_ratio": float(high_quality.float().mean()),
        "kl": uniform_kl(counts) if counts.sum() > 0 else None,
    }


def uniform_kl(counts: Tensor) -> float:
    """KL(p ‖ uniform) of a histogram of counts: 0 when balanced, log(K) when all mass is in
    one of the K bins."""
    p = counts.double() / counts.sum()
    nonzero = p[p > 0]
    return float((nonzero * (nonzero * len(counts)).log()).sum())
