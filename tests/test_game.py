"""Game-aware update rules (README, "Training as a game"), through the Trainer, on the bilinear
game of the WGAN Dirac-GAN: L_D = psi theta, L_G = -psi theta, so v = (-psi, theta)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from ganopt.build import build
from ganopt.losses import WassersteinLoss
from ganopt.objective import Objective
from ganopt.optimizers import ExtraAdam, ExtraSGD, OptimisticAdam, OptimisticSGD
from ganopt.regularizers import consensus
from tests.conftest import MemoryLogger, compose_config, make_trainer
from tests.dirac import LinearCritic, PointGenerator, zeros

ETA = 0.1
RULES = {"plain": torch.optim.SGD, "extra": ExtraSGD, "optimistic": OptimisticSGD}


def bilinear_trainer(tmp_path, rule, update, gamma=None, start=(1.0, 1.0)):
    """The Trainer wired by build(), with the Dirac-GAN's players, the WGAN loss, SGD steps."""
    components = build(compose_config(["trainer.progress=false", f"trainer.update={update}"]))
    G, D = PointGenerator(start[0]), LinearCritic(start[1])
    regularizers = [consensus(gamma)] if gamma else []
    components = dataclasses.replace(
        components,
        G=G,
        D=D,
        objective=Objective(WassersteinLoss(), regularizers),
        opt_G=RULES[rule](G.parameters(), lr=ETA),
        opt_D=RULES[rule](D.parameters(), lr=ETA),
        data=zeros(),
        ema=None,
        clipper=None,
        schedule=None,
    )
    return components.make_trainer(tmp_path, MemoryLogger())


def trajectory(trainer, steps):
    points = []
    for step in range(1, steps + 1):
        trainer.train_step(step, None)
        trainer.state.step = step
        points.append((trainer.G.theta.item(), trainer.D.psi.item()))
    return np.array(points)


def by_hand(rule, update, steps, start=(1.0, 1.0)):
    """The update equations written out: v_G = -psi at G's point, v_D = theta at D's."""
    theta, psi = start
    last = {"G": 0.0, "D": 0.0}  # the previous update, for optimism

    def move(network, x, gradient):
        u = -ETA * gradient
        step = 2 * u - last[network] if rule == "optimistic" else u
        last[network] = u
        return x + step

    def one_pass(theta_at, psi_at, theta_from, psi_from):
        """Gradients at (theta_at, psi_at), D first; steps from (theta_from, psi_from)."""
        new_psi = move("D", psi_from, theta_at)
        psi_for_g = new_psi if update == "alternating" else psi_at
        return move("G", theta_from, -psi_for_g), new_psi

    points = []
    for _ in range(steps):
        if rule == "extra":
            theta_x, psi_x = one_pass(theta, psi, theta, psi)  # the look-ahead
            if update == "alternating":
                new_psi = psi - ETA * theta_x
                theta, psi = theta + ETA * new_psi, new_psi
            else:
                theta, psi = theta + ETA * psi_x, psi - ETA * theta_x
        else:
            theta, psi = one_pass(theta, psi, theta, psi)
        points.append((theta, psi))
    return np.array(points)


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
@pytest.mark.parametrize("rule", list(RULES))
def test_update_rules_follow_their_equations_on_the_bilinear_game(rule, update, tmp_path):
    trainer = bilinear_trainer(tmp_path, rule, update)
    np.testing.assert_allclose(trajectory(trainer, 60), by_hand(rule, update, 60), atol=1e-12)


def test_on_the_bilinear_game_simultaneous_diverges_alternating_cycles_the_others_converge(
    tmp_path,
):
    radius = {}
    for rule in RULES:
        for update in ("simultaneous", "alternating"):
            points = trajectory(bilinear_trainer(tmp_path / rule / update, rule, update), 400)
            radius[rule, update] = np.hypot(points[:, 0], points[:, 1])
    start = math.sqrt(2)
    # simultaneous GD: each step multiplies the radius by sqrt(1 + eta^2), exactly
    expected = start * (1 + ETA**2) ** (np.arange(1, 401) / 2)
    np.testing.assert_allclose(radius["plain", "simultaneous"], expected, rtol=1e-9)
    # alternating GD: a symplectic map, bounded, never converging
    assert 0.8 < radius["plain", "alternating"].min() < radius["plain", "alternating"].max() < 1.8
    # extragradient: the radius shrinks by sqrt(1 - eta^2 + eta^4) per step
    shrink = start * (1 - ETA**2 + ETA**4) ** (np.arange(1, 401) / 2)
    np.testing.assert_allclose(radius["extra", "simultaneous"], shrink, rtol=1e-9)
    assert radius["optimistic", "simultaneous"][-1] < 0.2 * start


def test_consensus_converges_on_the_bilinear_game(tmp_path):
    """v = (-psi, theta), ||v||^2 = theta^2 + psi^2: consensus adds gamma (theta, psi) to both
    players' gradients, so simultaneous steps contract by |1 - eta gamma - i eta| per step."""
    gamma = 0.5
    trainer = bilinear_trainer(tmp_path, "plain", "simultaneous", gamma=gamma)
    radius = np.hypot(*trajectory(trainer, 100).T)
    factor = math.hypot(1 - ETA * gamma, ETA)
    np.testing.assert_allclose(radius, math.sqrt(2) * factor ** np.arange(1, 101), rtol=1e-9)


def test_extragradient_takes_the_gradient_at_the_look_ahead_and_steps_from_the_start():
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = ExtraSGD([p], lr=0.5)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.extrapolate()
    assert p.item() == 0.0  # 1 - 0.5 * 2
    p.grad = torch.tensor([4.0], dtype=torch.float64)
    opt.step()
    assert p.item() == -1.0  # from 1, with the look-ahead's gradient: 1 - 0.5 * 4
    opt.step()  # without a look-ahead: a plain step
    assert p.item() == -3.0


def test_optimism_steps_twice_the_update_minus_the_previous_and_checkpoints_it():
    p = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = OptimisticSGD([p], lr=1.0)
    for gradient, expected in [(1.0, -2.0), (3.0, -2.0 - 6.0 + 1.0)]:
        p.grad = torch.tensor([gradient], dtype=torch.float64)
        opt.step()
        assert p.item() == expected
    state = opt.state_dict()["state"][0]
    assert state["previous_update"].item() == -3.0


def test_adam_based_rules_keep_separate_state_per_player_and_resume_exactly(tmp_path):
    trainer, _ = make_trainer(["optim=optimistic_adam", "trainer.steps=3"], tmp_path)
    assert isinstance(trainer.opt_G, OptimisticAdam) and trainer.opt_G is not trainer.opt_D
    trainer.fit()
    g_params = {id(p) for p in trainer.G.parameters()}
    assert {id(p) for p in trainer.opt_G.state} == g_params
    extra, _ = make_trainer(["optim=extra_adam", "trainer.steps=2"], tmp_path / "extra")
    assert isinstance(extra.opt_D, ExtraAdam)
    extra.fit()
    # both passes feed Adam's moments: two per generator step, as in the paper's code
    assert extra.opt_D.state[next(extra.D.parameters())]["step"].item() == 4
