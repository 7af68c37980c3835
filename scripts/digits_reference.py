"""The scale of fd_digits: what the metric gives for real digits and for noise.

    python scripts/digits_reference.py [--table FILE]

fd_digits is the Fréchet distance between the digits CNN's 128-d features of a generator's
samples and of all 1797 bundled digits (docs/evaluation.md). For scale, this
prints it for one random half of the real digits against the whole set and against the other
half, and for uniform and Gaussian noise images in [-1, 1]; all with the same cached classifier
a run uses (trained on first use and cached: docs/install.md).
"""

from __future__ import annotations

import argparse
import sys

import torch

from ganopt.data import digits
from ganopt.evaluation import frechet_distance_of
from ganopt.evaluation.digits_classifier import load_digits_classifier
from ganopt.tables import add_table_argument, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_table_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    lines = ["| images | fd_digits |\n|---|---|"]
    for label, a, b in rows:
        lines.append(f"| {label} | {frechet_distance_of(features[a], features[b]):.3g} |")
    lines.append(f"\nThe classifier's held-out accuracy: {100 * accuracy:.1f} %.")
    print("\n".join(lines))
    write_table(args.table, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
