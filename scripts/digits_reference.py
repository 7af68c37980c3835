"""The scale of fd_digits: its real-vs-real floor at each sample count, and noise.

    python scripts/digits_reference.py [--table FILE]

fd_digits is a Fréchet distance on the digits CNN's 128-d features (docs/evaluation.md). Two
disjoint samples of the same real digits do not score 0: the estimate of a Fréchet distance
from n samples is biased upwards, by roughly a constant over n (Chong & Forsyth 2020), so the
floor falls as n grows. This prints, for several n, the distance between two disjoint random
draws of n real digits each (over 10 draws: mean, min, max), the floor a run reports (half the
digits against the other half, as the evaluator splits them), and uniform and Gaussian noise
against that reference; all with the cached classifier a run uses (docs/install.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from ganopt.data import digits
from ganopt.evaluation import DigitsScore, frechet_distance_of
from ganopt.evaluation.digits_classifier import load_digits_classifier
from ganopt.tables import add_table_argument, write_table

#: sample counts per side, up to the largest two disjoint halves of the 1797 digits
COUNTS = (50, 100, 200, 400, 898)
DRAWS = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_table_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = digits(batch_size=1, holdout=0).images
    classifier, accuracy = load_digits_classifier()
    with torch.no_grad():
        features = classifier.features(images)
    lines = ["| n per side | real vs real: mean | min | max |", "|---|---|---|---|"]
    rng = torch.Generator().manual_seed(0)
    for n in COUNTS:
        draws = []
        for _ in range(DRAWS):
            order = torch.randperm(len(images), generator=rng)
            draws.append(frechet_distance_of(features[order[:n]], features[order[n : 2 * n]]))
        lines.append(
            f"| {n} | {statistics.fmean(draws):.3g} | {min(draws):.3g} | {max(draws):.3g} |"
        )
    score = DigitsScore(images, device="cpu")
    noise = {
        "uniform noise in [-1, 1]": torch.rand(score.n, *images.shape[1:], generator=rng) * 2 - 1,
        "Gaussian noise, clamped to [-1, 1]": torch.randn(
            score.n, *images.shape[1:], generator=rng
        ).clamp(-1, 1),
    }
    lines += [
        "",
        f"| {score.n} images against the evaluator's {score.info['fd_digits_n_real']:.0f} "
        "reference digits | fd_digits |",
        "|---|---|",
        f"| the other half of the digits: the floor a run reports | {score.floor:.3g} |",
    ]
    for name, x in noise.items():
        lines.append(f"| {name} | {score(Replay(x))['fd_digits']:.3g} |")
    lines.append(f"\nThe classifier's held-out accuracy: {100 * accuracy:.1f} %.")
    print("\n".join(lines))
    write_table(args.table, "\n".join(lines))
    return 0


class Replay(torch.nn.Module):
    """Given images as a 'generator': the evaluator scores them as it scores G's samples."""

    z_dim = 1

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the evaluator reads the device

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        start = getattr(self, "_at", 0)
        self._at = start + len(z)
        return self.images[start : start + len(z)]


if __name__ == "__main__":
    sys.exit(main())
