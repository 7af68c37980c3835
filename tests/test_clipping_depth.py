"""scripts/clipping_depth.py: Gulrajani et al. (2017), Fig. 1b."""

import csv
import math

import pytest

from tests.conftest import load_script

pytestmark = pytest.mark.slow  # trains four critics: python -m pytest -m "not slow" skips it


def test_clipping_explodes_or_vanishes_with_depth_and_the_penalty_does_not(tmp_path):
    script = load_script("clipping_depth")
    # a smaller critic than the default (12 x 256, 200 iterations) with a faster penalty run
    args = ["--out", str(tmp_path), "--width", "64", "--iters", "60", "--gp-lr", "1e-3"]
    assert script.main(args) == 0

    with open(tmp_path / "clipping_depth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["constraint", "layer", "grad_norm"]
    norms: dict[str, list[float]] = {}
    for row in rows:
        norms.setdefault(row["constraint"], []).append(float(row["grad_norm"]))
    assert set(norms) == {"0.1", "0.01", "0.001", "gp"}
    assert all(len(n) == 12 for n in norms.values())

    assert all(n > 0 for series in norms.values() for n in series)  # no float32 underflow

    def log10_change(series):  # from the last hidden layer back to the first
        return math.log10(series[0] / series[-1])

    assert log10_change(norms["0.1"]) > 3  # explodes toward the input
    assert log10_change(norms["0.01"]) < -3  # vanishes toward the input
    assert log10_change(norms["0.001"]) < -3
    gp = norms["gp"]
    assert max(gp) / min(gp) < 10  # within about one order of magnitude
    assert (tmp_path / "clipping_depth.png").stat().st_size > 0
