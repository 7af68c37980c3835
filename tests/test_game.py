"""Game-aware update rules (docs/game.md), through the Trainer, on the bilinear
game of the WGAN Dirac-GAN: L_D = psi theta, L_G = -psi theta, so v = (-psi, theta)."""

import dataclasses
import math
import re
import threading

import numpy as np
import pytest
import torch

from ganopt.background import BackgroundTask
from ganopt.composition import compose_config
from ganopt.config import ConfigError
from ganopt.diagnostics.game import ROTATION_CAP, GameField, measure_game
from ganopt.losses import NonSaturatingLoss, StandardLoss, WassersteinLoss
from ganopt.objective import Objective
from ganopt.optimizers import ExtraAdam, ExtraSGD, OptimisticAdam, OptimisticSGD
from ganopt.regularizers import consensus, r1
from ganopt.setup import assembly
from ganopt.setup.assembly import build
from ganopt.tags import GAME_TAGS
from tests.conftest import MemoryLogger, first_state, make_trainer
from tests.dirac import LinearCritic, PointGenerator, zeros

ETA = 0.1
SMALL_MLP = ["model.g.hidden=[16,16]", "model.d.hidden=[16,16]", "trainer.batch_size=32"]
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
        flat={},  # these optimizers step the players' own tensors
        data=zeros(),
        ema=None,
        clipper=None,
        schedule=None,
    )
    return assembly.make_trainer(components, tmp_path, MemoryLogger())


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
    saved = trainer.state.state_dict()  # one state per parameter, as the checkpoint keeps it
    assert len(saved["opt_G"]["state"]) == len(list(trainer.G.parameters()))
    assert len(saved["opt_D"]["state"]) == len(list(trainer.D.parameters()))
    assert {id(p) for p in trainer.opt_G.state}.isdisjoint(id(p) for p in trainer.opt_D.state)
    extra, _ = make_trainer(["optim=extra_adam", "trainer.steps=2"], tmp_path / "extra")
    assert isinstance(extra.opt_D, ExtraAdam)
    extra.fit()
    # both passes feed Adam's moments: two per generator step, as in the paper's code
    assert first_state(extra.opt_D)["step"].item() == 4


# ---------------------------------------------------------------- seeing the game
def dirac_spectrum(objective, theta=0.0, psi=0.0, k=2):
    G, D = PointGenerator(theta), LinearCritic(psi)
    real, z = torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, 1)
    field = GameField(objective.game_losses(G, D, real, z, 1), (G, D))
    return measure_game(field, k, 20, torch.Generator().manual_seed(0))


def roots(gamma_damping, omega_sq):
    """The roots of λ² + gamma λ + omega² (largest modulus first)."""
    found = np.roots([1.0, gamma_damping, omega_sq]).astype(complex)
    return found[np.argsort(-np.abs(found))]


def same_spectrum(found, expected, tol=1e-4):
    key = lambda z: (round(z.real, 6), round(z.imag, 6))  # noqa: E731
    found, expected = sorted(found, key=key), sorted(np.asarray(expected), key=key)
    np.testing.assert_allclose(found, expected, atol=tol)


@pytest.mark.parametrize(
    ("objective", "psi", "expected"),
    [
        # unregularized: a pure rotation, ±i f'(0) with f'(0) = 1/2 (sigmoid losses), 1 (WGAN)
        (Objective(NonSaturatingLoss()), 0.0, [0.5j, -0.5j]),
        (Objective(StandardLoss()), 0.0, [0.5j, -0.5j]),
        (Objective(WassersteinLoss()), 0.0, [1j, -1j]),
        # R1: λ² + γλ + 1/4 = 0, complex (γ < 1) or real (γ > 1), real parts < 0; at the
        # equilibrium D's input gradient is exactly 0, where R1 is taken as a sum of squares
        (Objective(NonSaturatingLoss(), [r1(0.6)]), 0.0, roots(0.6, 0.25)),
        (Objective(NonSaturatingLoss(), [r1(3.0)]), 0.0, roots(3.0, 0.25)),
        # consensus: -J - gamma JᵀJ = -J - gamma/4 I, so -gamma/4 ± i/2
        (Objective(NonSaturatingLoss(), [consensus(2.0)]), 0.0, [-0.5 + 0.5j, -0.5 - 0.5j]),
    ],
    ids=["nonsaturating", "standard", "wgan", "r1-complex", "r1-real", "consensus"],
)
def test_the_numeric_spectrum_matches_the_dirac_gan_in_closed_form(objective, psi, expected):
    measured = dirac_spectrum(objective, psi=psi)
    same_spectrum(measured.eigenvalues, expected)
    assert measured.scalars["game/eig_real_max"] == pytest.approx(max(np.real(expected)), abs=1e-4)


def test_a_pure_rotation_has_rotational_share_one():
    measured = dirac_spectrum(Objective(WassersteinLoss()), theta=1.0, psi=0.5)
    assert measured.scalars["game/rotational_share"] == pytest.approx(1.0)
    assert measured.scalars["game/rotation"] == ROTATION_CAP


class Quadratic(torch.nn.Module):
    def __init__(self, n, generator):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n, generator=generator, dtype=torch.float64))


def test_arnoldi_and_lanczos_match_a_quadratic_game_dense():
    """L_G = ½θᵀAθ + θᵀBφ, L_D = ½φᵀCφ + φᵀEθ: v's Jacobian is [[A, B], [E, C]]."""
    rng = torch.Generator().manual_seed(1)
    ng, nd = 5, 4

    def sym(n):
        m = torch.randn(n, n, generator=rng, dtype=torch.float64)
        return m + m.T

    A, C = sym(ng), sym(nd)
    B = torch.randn(ng, nd, generator=rng, dtype=torch.float64)
    E = torch.randn(nd, ng, generator=rng, dtype=torch.float64)
    G, D = Quadratic(ng, rng), Quadratic(nd, rng)
    theta, phi = G.w, D.w
    loss_G = 0.5 * theta @ A @ theta + theta @ B @ phi
    loss_D = 0.5 * phi @ C @ phi + phi @ E @ theta
    field = GameField((loss_G, loss_D), (G, D))
    measured = measure_game(field, ng + nd, ng + nd, torch.Generator().manual_seed(0))
    J = torch.cat([torch.cat([A, B], 1), torch.cat([E, C], 1)]).numpy()
    same_spectrum(measured.eigenvalues, np.linalg.eigvals(-J), tol=1e-8)
    s = measured.scalars
    assert s["game/hessian_G_min"] == pytest.approx(np.linalg.eigvalsh(A.numpy()).min())
    assert s["game/hessian_D_max"] == pytest.approx(np.linalg.eigvalsh(C.numpy()).max())
    v = np.concatenate([(A @ theta + B @ phi).detach(), (C @ phi + E @ theta).detach()])
    sym_part, anti = (J + J.T) / 2 @ v, (J - J.T) / 2 @ v
    share = anti @ anti / (anti @ anti + sym_part @ sym_part)
    assert s["game/rotational_share"] == pytest.approx(share)


def test_game_diagnostics_leave_the_trajectory_bit_identical_and_log_the_spectrum(tmp_path):
    """Instance noise and WGAN-GP's interpolates draw from the global RNG: the measurement
    must not move it. Measured at every step against never."""
    common = ["reg=instance_noise", "loss=wgan_gp", "trainer.steps=6", "trainer.log_every=2"]
    common += ["trainer.figures=true"]
    common += SMALL_MLP
    weights, logs = [], []
    for every in (1, 0):
        trainer, logger = make_trainer(
            [*common, f"diagnostics.game_every={every}"], tmp_path / str(every)
        )
        trainer.fit()
        weights.append([t.clone() for t in [*trainer.G.parameters(), *trainer.D.parameters()]])
        logs.append(logger)
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    measured, plain = logs
    assert [s for s, _ in measured.scalar_log["game/eig_real_max"]] == [1, 2, 3, 4, 5, 6]
    assert ("game/spectrum", 6) in [(tag, step) for tag, step, _ in measured.images]
    assert measured.scalar_log["loss/D"] == plain.scalar_log["loss/D"]
    assert not any(tag.startswith("game/") for tag in plain.scalar_log)
    assert set(GAME_TAGS) <= set(measured.scalar_log) and measured.expected_tags == set(GAME_TAGS)


def test_the_game_is_measured_mid_run_and_at_the_end_on_toy_data_by_default(tmp_path):
    """Every max(eval_every, steps // 2) steps and at the end: a few percent of a run."""
    trainer, logger = make_trainer(
        ["trainer.steps=9", "trainer.eval_every=2", "diagnostics.game_every=null", *SMALL_MLP],
        tmp_path,
    )
    trainer.fit()
    assert [s for s, _ in logger.scalar_log["game/rotation"]] == [4, 8, 9]


def test_the_game_layout_is_in_tensorboards_custom_scalars():
    from ganopt.logger import custom_scalars_layout

    assert "game" in custom_scalars_layout(["loss/D", *GAME_TAGS])["ganopt"]


def test_consensus_is_refused_under_torchrun_and_extragradient_needs_both_players():
    from types import SimpleNamespace

    from ganopt.setup.checks import update_rule_problems

    two_ranks = SimpleNamespace(distributed=True)
    consensus = compose_config(["+reg@reg2=consensus"])
    assert "reg: consensus optimization is not supported under torchrun" in (
        update_rule_problems(consensus, two_ranks)
    )
    mixed = compose_config(["optim=extra_adam", "optimizer@optim.d=adam"])
    problems = update_rule_problems(mixed, SimpleNamespace(distributed=False))
    assert any("both players or neither" in p for p in problems)
    assert update_rule_problems(compose_config(["optim=extra_adam"]), two_ranks) == []


def test_under_extragradient_update_ratio_counts_from_before_the_look_ahead(tmp_path):
    from ganopt.diagnostics import Probe

    trainer, _ = make_trainer(["optim=extra_sgd", *SMALL_MLP], tmp_path)
    before = [p.detach().clone() for p in trainer.G.parameters()]
    probe = Probe(histograms=False)
    trainer.diagnostics.start(1)
    trainer.train_step(1, probe)
    after = [p.detach() for p in trainer.G.parameters()]
    delta = torch.stack([(a - b).norm() for a, b in zip(after, before, strict=True)]).norm()
    size = torch.stack([max(a.norm(), b.norm()) for a, b in zip(after, before, strict=True)])
    expected = (delta / size.norm()).item()
    assert probe.scalars["update_ratio/G/total"].item() == pytest.approx(expected, rel=1e-4)


def test_consensus_beside_r1_stays_finite_where_a_relu_critic_is_flat():
    """A sample in a ReLU critic's flat region has ∇x D = 0 exactly, where R1's norm has no
    second derivative: consensus differentiates R1's gradient once more (grid25 runs diverged
    with a NaN there before the game's losses took R1 as a sum of squares)."""
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    D = torch.nn.Sequential(
        torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1), torch.nn.Flatten(0)
    )
    with torch.no_grad():
        D[0].bias.fill_(-100.0)  # every hidden unit off: D is flat around the data
    objective = Objective(NonSaturatingLoss(), [r1(1.0), consensus(1.0)])
    penalty = objective.consensus_penalty(G, D, torch.randn(16, 2), torch.randn(16, 2), 1)
    penalty.backward()
    grads = [p.grad for p in [*G.parameters(), *D.parameters()] if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # the same value as the training step's R1
    real = torch.randn(16, 2, requires_grad=True)
    out = D(real)
    assert r1(1.0).game_penalty(D, real, None, out, None).item() == pytest.approx(
        r1(1.0).penalty(D, real, None, out, None).item()
    )


def test_a_lazy_regularizer_looks_ahead_with_the_rest_under_extragradient(tmp_path):
    """The look-ahead pass must not step from the anchor: its lazy phase extrapolates too."""
    trainer, _ = make_trainer(["optim=extra_sgd", "reg.every=2", *SMALL_MLP], tmp_path)
    calls = []
    for name in ("extrapolate", "step"):
        original = getattr(trainer.opt_D, name)
        setattr(trainer.opt_D, name, lambda o=original, n=name: calls.append(n) or o())
    trainer.train_step(2, None)  # R1's lazy phase is due at step 2
    assert calls == ["extrapolate", "extrapolate", "step", "step"]


# ---------------------------------------------------------------- the update rules' presets
@pytest.mark.parametrize(
    ("optim", "order"),
    [
        ("extra_adam", "simultaneous"),  # Gidel et al.'s method
        ("extra_sgd", "simultaneous"),
        ("extra_adam_alternating", "alternating"),
        ("extra_sgd_alternating", "alternating"),
        ("negative_momentum", "alternating"),
        ("lookahead_adam", "alternating"),
    ],
)
def test_each_update_rule_preset_chooses_its_order(optim, order):
    cfg = compose_config([f"optim={optim}"])
    assert cfg.trainer["update"] == order
    assert (
        compose_config([f"optim={optim}", "trainer.update=alternating"]).trainer["update"]
        == "alternating"
    )  # the command line still decides


def test_negative_momentum_preset_gives_d_a_negative_beta1_only():
    parts = build(compose_config(["optim=negative_momentum"]))
    assert parts.opt_D.param_groups[0]["betas"] == (-0.5, 0.9)
    assert parts.opt_G.param_groups[0]["betas"] == (0.5, 0.9)


def test_lookahead_in_training_syncs_both_players_every_k_steps(tmp_path):
    """After step k the weights are slow + alpha (fast - slow) from the start: one step of
    either player's optimizer moved them, lookahead pulled them back alpha of the way."""
    trainer, _ = make_trainer(
        [
            "optim=lookahead_adam",
            "optim.lookahead.k=1",
            "optim.lookahead.alpha=0.25",
            "trainer.steps=1",
        ],
        tmp_path / "la",
    )
    start = [p.detach().clone() for p in [*trainer.G.parameters(), *trainer.D.parameters()]]
    trainer.fit()  # each run built and trained in turn: both draw the same batches
    plain, _ = make_trainer(["optim=adam_decay", "trainer.steps=1"], tmp_path / "plain")
    plain.fit()
    fast = [p.detach() for p in [*plain.G.parameters(), *plain.D.parameters()]]
    synced = [p.detach() for p in [*trainer.G.parameters(), *trainer.D.parameters()]]
    for s, f, got in zip(start, fast, synced, strict=True):
        torch.testing.assert_close(got, s + 0.25 * (f - s))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lookahead={k: 0, alpha: 0.5}", "optim.lookahead: k must be an int >= 1"),
        ("optim.lookahead={k: 5}", "optim.lookahead: {k: int, alpha: float} or null"),
        ("optim.d.betas=[-1.5,0.9]", "Invalid beta parameter at index 0"),
    ],
)
def test_bad_update_rule_settings_are_refused_in_one_line(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(compose_config([override]))


def _probe(overrides):
    """The parts of a run that measures the game at every step, and its probe."""
    parts = build(compose_config(["trainer.batch_size=16", "diagnostics.game_every=1", *overrides]))
    return parts, parts.game


@pytest.mark.parametrize(
    "overrides",
    [[], ["model=dcgan", "data=digits", "model.g.width=8", "model.d.width=8", "reg=r2"]],
    ids=["toy", "dcgan_batchnorm"],
)
def test_the_game_measured_beside_training_gives_the_training_threads_numbers(overrides):
    """On copies taken at the step, on another thread, while the live weights move on."""
    parts, game = _probe(overrides)
    assert not game.draws_at_random(3)
    rng = torch.get_rng_state()
    measure = game.beside(3)
    here = game.measure(3)
    with torch.no_grad():
        for p in [*parts.G.parameters(), *parts.D.parameters()]:
            p.add_(0.5)
    there = BackgroundTask(3, "game", measure).result()
    assert there.scalars == here.scalars
    assert np.array_equal(there.eigenvalues, here.eigenvalues)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize(
    ("overrides", "draws"),
    [
        ([], False),
        (["reg=instance_noise"], True),
        (["loss=wgan_gp"], True),
        (["reg=instance_noise", "reg.anneal_steps=2"], False),  # annealed to 0 by step 3
    ],
)
def test_a_game_whose_passes_draw_at_random_is_seen_to_and_the_check_moves_no_rng(overrides, draws):
    _, game = _probe(overrides)
    rng = torch.get_rng_state()
    assert game.draws_at_random(3) is draws
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_run_logs_the_same_game_whether_measured_beside_training_or_not(tmp_path):
    """The mid-run game goes to a thread where a core is spare and its passes draw nothing at
    random (the final one beside the final evaluation); the run's bits and the logged game
    are those of a run that measures it on the training thread."""
    runs = []
    for beside in (True, False):
        trainer, logger = make_trainer(
            ["trainer.steps=9", "trainer.eval_every=4", "diagnostics.game_every=null", *SMALL_MLP],
            tmp_path / str(beside),
        )
        trainer.recorder._evaluates_beside = beside
        game, started = trainer.recorder.game, []
        game.beside = lambda step, measure=game.beside, started=started: (
            started.append(step) or measure(step)
        )
        trainer.fit()
        assert started == ([4, 8, 9] if beside else [])
        runs.append((logger.scalar_log, [p.clone() for p in trainer.G.parameters()]))
    (one, G1), (other, G2) = runs
    game_tags = [tag for tag in one if tag.startswith("game/")]
    assert set(GAME_TAGS) <= set(game_tags) and all(one[t] == other[t] for t in game_tags)
    assert [s for s, _ in one["game/rotation"]] == [4, 8, 9]
    assert all(torch.equal(a, b) for a, b in zip(G1, G2, strict=True))


def test_a_game_still_running_when_the_run_ends_is_drawn_before_the_figures_close(tmp_path):
    """A run that fails or diverges while the game runs beside it: its spectrum is shown and
    drawn before the drawing process is shut down (it was handed to a closed one, which
    started another that nothing stopped), and metrics.json comes after."""
    trainer, logger = make_trainer(
        ["trainer.figures=true", "diagnostics.game_every=1", *SMALL_MLP], tmp_path
    )
    recorder = trainer.recorder
    recorder._evaluates_beside = True
    recorder.start(0)
    recorder.measure_game(1, beside_training=True)
    assert recorder._gaming is not None
    recorder.finish("failed", 1, error="RuntimeError: elsewhere")
    assert ("game/spectrum", 1) in [(tag, step) for tag, step, _ in logger.images]
    drawing = recorder.figure_writer.drawing
    assert drawing._process is None and drawing._workers == [] and drawing._thread is None


def test_a_second_ctrl_c_while_the_game_is_awaited_leaves_it_for_the_end_to_wait_for(tmp_path):
    """Interrupted while waiting for the game, the recorder still holds it, so that the run's
    end waits for its thread (a thread inside torch at exit aborts the process)."""
    trainer, _ = make_trainer(["diagnostics.game_every=1", *SMALL_MLP], tmp_path)
    recorder, release = trainer.recorder, threading.Event()
    recorder._gaming = BackgroundTask(1, "game", release.wait)

    def interrupted():
        raise KeyboardInterrupt

    recorder._gaming.wait = recorder._gaming.result = interrupted
    with pytest.raises(KeyboardInterrupt):
        recorder.show_game()
    assert recorder._gaming is not None
    del recorder._gaming.wait, recorder._gaming.result
    release.set()
    recorder.finish("interrupted", 1, aborted=True)
    assert recorder._gaming is None
