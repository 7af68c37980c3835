"""The Fréchet distance between two Gaussians fitted to feature sets (the "F" of FID)."""

from __future__ import annotations

import torch
from torch import Tensor


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) covariance of (N, d) features, in float64."""
    x = features.detach().double().flatten(1)
    if len(x) < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½).

    tr((Σ1 Σ2)^½) is computed as tr((Σ1^½ Σ2 Σ1^½)^½), whose argument is symmetric positive
    semi-definite, so symmetric eigendecompositions suffice and no complex parts appear.
    """
    root1 = _sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def frechet_distance_of(features_a: Tensor, features_b: Tensor) -> float:
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))
