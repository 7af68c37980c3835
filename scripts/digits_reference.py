"""The scale of fd_digits: what the metric gives for real digits and for noise.

    python scripts/digits_reference.py

fd_digits is the Fréchet distance between the digits CNN's 128-d features of a generator's
samples and of all 1797 bundled digits (README, "Images and evaluation"). For scale, this
prints it for one random half of the real digits against the whole set and against the other
half, and for uniform and Gaussian noise images in [-1, 1]; all with the same cached classifier
a run uses (trained on first use, cached as README describes).
"""

from __future__ import annotations

import sys

import torch

from ganopt.data import digits
from ganopt.evaluation import frechet_distance_of
from ganopt.evaluation.digits_classifier import load_digits_classifier


def main() -> int:
    images = digits(batch_size=1).images
    classifier, accuracy = load_digits_classifier()
    rng = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=rng)
    half_a, half_b = images[order[: len(images) // 2]], images[order[len(images) // 2 :]]
    noise = {
        "uniform noise in [-1, 1]": torch.rand(2000, *images.shape[1:], generator=rng) * 2 - 1,
        "Gaussian noise, clamped to [-1, 1]": torch.randn(
            2000, *images.shape[1:], generator=rng
        ).clamp(-1, 1),
    }
    with torch.no_grad():
        features = {
            "all": classifier.features(images),
            "half_a": classifier.features(half_a),
            "half_b": classifier.features(half_b),
        } | {name: classifier.features(x) for name, x in noise.items()}
    rows = [
        ("a random half of the digits vs all digits", "half_a", "all"),
        ("one half vs the other half", "half_a", "half_b"),
        *((f"{name} vs all digits", name, "all") for name in noise),
    ]
    print(f"digits classifier: {100 * accuracy:.1f}% held-out accuracy\n")
    print("| images | fd_digits |\n|---|---|")
    for label, a, b in rows:
        print(f"| {label} | {frechet_distance_of(features[a], features[b]):.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
