"""scripts/dirac_gan.py: Mescheder et al. (2018)'s Dirac-GAN."""

import csv
import importlib.util
import math

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def dirac():
    spec = importlib.util.spec_from_file_location("dirac_gan", REPO / "scripts" / "dirac_gan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def final_distance(dirac, method, update):
    path = dirac.run(
        method, update, steps=500, lr=0.1, start=(1.0, 1.0), gamma=1.0, lam=1.0, sigma=1.0, clip=1.0
    )
    assert len(path) == 501  # no step produced a non-finite value
    return math.hypot(*path[-1])


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
@pytest.mark.parametrize("method", ["standard", "wgan"])
def test_unregularized_gan_and_wgan_do_not_converge(dirac, method, update):
    assert final_distance(dirac, method, update) > 0.5


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
@pytest.mark.parametrize("method", ["r1", "instance_noise"])
def test_r1_and_instance_noise_converge(dirac, method, update):
    assert final_distance(dirac, method, update) < 1e-3


def test_simultaneous_unregularized_steps_spiral_outward(dirac):
    """Eigenvalues ±i/2 at the equilibrium: an explicit Euler step grows the radius."""
    path = dirac.run("standard", "simultaneous", 200, 0.1, (1.0, 1.0), 1.0, 1.0, 1.0, 1.0)
    radii = [math.hypot(*p) for p in path]
    assert radii[-1] > radii[0]


def test_writes_csv_and_plot(dirac, tmp_path):
    assert dirac.main(["--out", str(tmp_path), "--steps", "20"]) == 0
    with open(tmp_path / "dirac.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["method", "update", "step", "theta", "psi"]
    assert {(r["method"], r["update"]) for r in rows} == {
        (m, u) for m in dirac.METHODS for u in dirac.UPDATES
    }
    assert len(rows) == len(dirac.METHODS) * len(dirac.UPDATES) * 21
    first = rows[0]
    assert (first["step"], float(first["theta"]), float(first["psi"])) == ("0", 1.0, 1.0)
    assert (tmp_path / "dirac.png").stat().st_size > 0
