"""scripts/dirac_gan.py: Mescheder et al. (2018)'s Dirac-GAN."""

import csv
import math

import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def dirac():
    return load_script("dirac_gan")


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
@pytest.mark.parametrize("method", ["r1", "r2", "instance_noise", "consensus"])
def test_r1_r2_instance_noise_and_consensus_converge(dirac, method, update):
    assert final_distance(dirac, method, update) < 1e-3


@pytest.mark.slow
def test_nonsaturating_simultaneous_steps_spiral_in_to_a_limit_cycle_of_radius_sqrt_2h(dirac):
    for lr in (0.1, 0.2):
        path = dirac.run("nonsaturating", "simultaneous", 2500, lr, (1.0, 1.0), 1, 1, 1, 1)
        assert math.hypot(*path[-1]) == pytest.approx(math.sqrt(2 * lr), rel=0.03)


@pytest.mark.slow
def test_nonsaturating_alternating_steps_converge_as_one_over_sqrt_t(dirac):
    path = dirac.run("nonsaturating", "alternating", 4000, 0.1, (1.0, 1.0), 1, 1, 1, 1)
    radius_at = [math.hypot(*path[t]) for t in (1000, 4000)]
    assert radius_at[1] < 0.2
    assert radius_at[0] / radius_at[1] == pytest.approx(2.0, rel=0.03)  # 4x the steps, r / 2


def test_simultaneous_unregularized_steps_spiral_outward(dirac):
    """Eigenvalues ±i/2 at the equilibrium: an explicit Euler step grows the radius."""
    path = dirac.run("standard", "simultaneous", 200, 0.1, (1.0, 1.0), 1.0, 1.0, 1.0, 1.0)
    radii = [math.hypot(*p) for p in path]
    assert radii[-1] > radii[0]


@pytest.mark.slow
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


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
@pytest.mark.parametrize("method", ["extragradient", "optimistic"])
def test_extragradient_and_optimism_converge_where_gradient_steps_do_not(dirac, method, update):
    path = dirac.run(method, update, 500, 0.1, (1.0, 1.0), 1.0, 1.0, 1.0, 1.0)
    assert len(path) == 501
    assert dirac.rate(path) < 0.9990
    gradient = dirac.run("standard", update, 500, 0.1, (1.0, 1.0), 1.0, 1.0, 1.0, 1.0)
    assert math.hypot(*path[-1]) < 0.6 * math.hypot(*gradient[-1])


def test_simultaneous_extragradient_contracts_at_its_linearized_rate(dirac):
    """Eigenvalues ±i/2: each step multiplies the radius by |1 - h²/4 - i h/2|."""
    h = 0.1
    path = dirac.run("extragradient", "simultaneous", 2000, h, (0.01, 0.01), 1, 1, 1, 1)
    expected = math.sqrt((1 - h**2 / 4) ** 2 + h**2 / 4)
    assert dirac.rate(path) == pytest.approx(expected, abs=1e-5)
