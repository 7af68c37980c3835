"""Games with a known answer: ganopt's optimizers on them against theory, lookahead-minmax and
negative momentum against hand-written references, and scripts/games.py."""

import math

import pytest
import torch
from torch import nn

from ganopt.games import RULES, Bilinear, Dirac, Quadratic, closed_form, play, predict
from ganopt.lookahead import LookaheadMinmax
from ganopt.optimizers import SGD, Adam
from tests.conftest import load_script

BILINEAR = Bilinear([1.0, 0.7, 0.3])
H = 0.3


def _relative_gap(measured, theory):
    return max(abs(m - t) / t for m, t in zip(measured, theory, strict=True))


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("game", [BILINEAR, Quadratic(3, 0.8)], ids=["bilinear", "quadratic"])
def test_every_rule_follows_its_recurrence_for_100_steps(rule, game):
    """The optimizers GAN training uses, run on the game, against the linear recurrence each
    rule is on a linear game (written apart, in numpy)."""
    steps = 100
    measured = [d for _, d in play(game, RULES[rule], H, steps)]
    assert _relative_gap(measured, predict(game, rule, H, steps)) < 1e-6


@pytest.mark.parametrize("rule", ["simultaneous", "extragradient"])
def test_closed_forms_on_the_bilinear_game(rule):
    measured = [d for _, d in play(BILINEAR, RULES[rule], H, 100)]
    assert _relative_gap(measured, closed_form(BILINEAR, rule, H, 100)) < 1e-6


def test_the_rates_of_one_rotation():
    """Started in one singular pair of A, each step multiplies the distance by
    sqrt(1 + h²σ²) (simultaneous GD) or sqrt(1 - h²σ² + h⁴σ⁴) (extragradient)."""
    game = Bilinear([0.5])
    sigma = 0.5
    for rule, factor in [
        ("simultaneous", math.sqrt(1 + H**2 * sigma**2)),
        ("extragradient", math.sqrt(1 - H**2 * sigma**2 + H**4 * sigma**4)),
    ]:
        curve = [d for _, d in play(game, RULES[rule], H, 100)]
        expected = [curve[0] * factor**t for t in range(101)]
        assert _relative_gap(curve, expected) < 1e-6, rule


def test_what_theory_says_happens_on_the_bilinear_game():
    """Simultaneous GD spirals out, alternating GD circles, the game-aware rules converge;
    extragradient pays two evaluations a step."""
    final = {name: play(BILINEAR, rule, H, 200)[-1] for name, rule in RULES.items()}
    start = BILINEAR.distance(*BILINEAR.start)
    assert final["simultaneous"][1] > 10 * start
    assert 0.5 * start < final["alternating"][1] < 2 * start
    for name in ("extragradient", "optimistic", "lookahead", "negative_momentum"):
        assert final[name][1] < 0.5 * start, name
    assert final["extragradient"][0] == 400 and final["optimistic"][0] == 200


def test_quadratic_eigenvalues_lie_at_the_chosen_angle():
    for rotation in (0.0, 0.5, 1.0):
        eigenvalues = torch.linalg.eigvals(Quadratic(4, rotation).jacobian)
        angles = eigenvalues.angle().abs()
        assert torch.allclose(eigenvalues.abs(), torch.ones(8, dtype=torch.float64))
        assert torch.allclose(angles, torch.full((8,), math.pi * rotation / 2, dtype=torch.float64))


def test_dirac_game_is_ganopts_dirac_gan():
    """Its field at (θ, ψ) = (1, 1) under the minimax loss: (-σ(1), σ(1))."""
    game = Dirac()
    x, y = (t.clone().requires_grad_() for t in game.start)
    loss_x, loss_y = game.losses(x, y)
    sigmoid = torch.sigmoid(torch.tensor(1.0, dtype=torch.float64))
    assert torch.autograd.grad(loss_x, x)[0].item() == pytest.approx(-sigmoid.item())
    assert torch.autograd.grad(loss_y, y)[0].item() == pytest.approx(sigmoid.item())


class _Pair(nn.Module):
    def __init__(self, seed):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, generator=torch.Generator().manual_seed(seed)))


def test_lookahead_minmax_against_a_hand_written_reference():
    """k fast steps of each player's own optimizer, then slow += alpha (fast - slow) for both."""
    G, D = _Pair(0), _Pair(1)
    slow = [G.w.detach().clone(), D.w.detach().clone()]
    fast = [t.clone() for t in slow]
    lookahead = LookaheadMinmax([G, D], k=3, alpha=0.4)
    optimizers = [torch.optim.SGD([G.w], lr=0.1), torch.optim.SGD([D.w], lr=0.1)]
    grads = torch.randn(7, 2, 3, generator=torch.Generator().manual_seed(2))
    for step in range(1, 8):
        for player, optimizer, g, i in zip(
            (G, D), optimizers, grads[step - 1], (0, 1), strict=True
        ):
            player.w.grad = g.clone()
            optimizer.step()
            fast[i] = fast[i] - 0.1 * g
        lookahead.after_generator_step(step)
        if step % 3 == 0:
            slow = [s + 0.4 * (f - s) for s, f in zip(slow, fast, strict=True)]
            fast = [s.clone() for s in slow]
    assert torch.allclose(G.w.detach(), fast[0], atol=1e-6)
    assert torch.allclose(D.w.detach(), fast[1], atol=1e-6)
    state = lookahead.state_dict()
    assert torch.allclose(state["slow"][0], slow[0], atol=1e-6)


@pytest.mark.parametrize(("k", "alpha"), [(0, 0.5), (2.5, 0.5), (5, 0.0), (5, 1.5), (True, 0.5)])
def test_lookahead_refuses_bad_settings(k, alpha):
    with pytest.raises(ValueError, match="must be"):
        LookaheadMinmax([_Pair(0)], k, alpha)


def test_negative_momentum_sgd_and_adam_against_hand_written_references():
    torch.manual_seed(0)
    grads = torch.randn(6, 5, dtype=torch.float64)
    p = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    sgd = SGD([p], lr=0.1, momentum=-0.5)
    q, buffer = torch.zeros(5, dtype=torch.float64), None
    for g in grads:
        p.grad = g.clone()
        sgd.step()
        buffer = g if buffer is None else -0.5 * buffer + g
        q = q - 0.1 * buffer
    assert torch.allclose(p.detach(), q, rtol=0, atol=1e-12)
    p = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    adam = Adam([p], lr=0.1, betas=(-0.5, 0.9))
    q, m, v = (torch.zeros(5, dtype=torch.float64) for _ in range(3))
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        adam.step()
        m, v = -0.5 * m + 1.5 * g, 0.9 * v + 0.1 * g * g
        q = q - 0.1 * (m / (1 - (-0.5) ** t)) / ((v / (1 - 0.9**t)).sqrt() + 1e-8)
    assert torch.allclose(p.detach(), q, rtol=0, atol=1e-12)
    assert adam.state_dict()["param_groups"][0]["betas"] == (-0.5, 0.9)


def test_negative_momentum_keeps_torchs_limits():
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, lr=0.1, momentum=-0.5, nesterov=True)
    with pytest.raises(ValueError, match="beta"):
        Adam(p, lr=0.1, betas=(-1.0, 0.9))


@pytest.mark.slow
def test_games_script_writes_curves_figures_and_a_table(tmp_path, capsys):
    script = load_script("games")
    table = tmp_path / "games.md"
    assert (
        script.main(["--out", str(tmp_path / "out"), "--evaluations", "20", "--table", str(table)])
        == 0
    )
    for game in ("bilinear", "quadratic", "dirac"):
        assert (tmp_path / "out" / f"{game}.png").stat().st_size > 0
        rows = (tmp_path / "out" / f"{game}.csv").read_text().splitlines()
        assert rows[0] == "game,setting,rule,evaluations,distance,predicted,closed_form"
    text = table.read_text()
    assert "| bilinear | σ = 1 … 0.2 | simultaneous GD |" in text
    with pytest.raises(SystemExit) as refused:
        script.main(["--game", "chess", "--out", str(tmp_path)])
    assert refused.value.code == 2
    assert "unknown game 'chess'" in capsys.readouterr().err
