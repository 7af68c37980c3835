"""Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020):
the real and the generated features each define a manifold, the union of balls around every
point reaching its k-th nearest neighbour, and each metric counts points inside the other's.

Fréchet distance fits one Gaussian to each set, so a generator that covers half the modes well
can score as well as real data; these four see it. Definitions as in Naeem et al.'s code
(github.com/clovaai/generative-evaluation-prdc, which tests/test_evaluation.py compares against),
computed with torch in chunks, so that 5000 × 5000 distances never sit in memory at once.
docs/evaluation.md says what each sees and misses.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: neighbours that set a point's ball, as in both papers' code
NEAREST_K = 5
#: rows of a distance matrix held at once
CHUNK = 1024


def kth_neighbour_radii(features: Tensor, k: int = NEAREST_K) -> Tensor:
    """The distance from each point to its k-th nearest other point (the point itself, at
    distance 0, is the first)."""
    if len(features) <= k:
        raise ValueError(f"need more than k = {k} points for k-nearest-neighbour radii")
    # the (k+1)-th smallest of each row: topk's values, sorted, are kthvalue's, at a third of
    # its cost on a CPU
    smallest = (
        torch.cdist(c, features).topk(k + 1, dim=1, largest=False) for c in _chunks(features)
    )
    return torch.cat([s.values[:, k] for s in smallest])


def prdc(
    real: Tensor, fake: Tensor, k: int = NEAREST_K, real_radii: Tensor | None = None
) -> dict[str, float]:
    """``precision``: the share of fakes inside the real manifold; ``recall``: the share of
    reals inside the fake manifold; ``density``: how many real balls contain each fake, over k,
    averaged (1 when fakes are distributed like reals; above 1 where they crowd dense regions);
    ``coverage``: the share of reals whose ball holds at least one fake. ``real_radii`` may be
    passed when the reals are fixed (an evaluator computes them once)."""
    real, fake = real.double().flatten(1), fake.double().flatten(1)
    if real_radii is None:
        real_radii = kth_neighbour_radii(real, k)
    fake_radii = kth_neighbour_radii(fake, k)
    balls_holding = torch.zeros(len(fake), dtype=torch.float64, device=fake.device)
    recalled, covered = [], []
    for rows, radii in zip(_chunks(real), real_radii.double().split(CHUNK), strict=True):
        distances = torch.cdist(rows, fake)  # (chunk of reals, fakes)
        inside_real = distances < radii[:, None]
        balls_holding += inside_real.sum(dim=0)
        covered.append(distances.min(dim=1).values < radii)
        recalled.append((distances < fake_radii[None, :]).any(dim=1))
    return {
        "precision": float((balls_holding > 0).double().mean()),
        "recall": float(torch.cat(recalled).double().mean()),
        "density": float(balls_holding.mean() / k),
        "coverage": float(torch.cat(covered).double().mean()),
    }


def _chunks(x: Tensor) -> tuple[Tensor, ...]:
    return x.double().flatten(1).split(CHUNK)
