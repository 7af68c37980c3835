"""Update rules played on a game with ganopt's own optimizers and lookahead, unchanged from GAN
training (ganopt/optimizers.py, ganopt/lookahead.py), counting gradient evaluations: one is
one player's gradient computed once, so an extragradient step costs two and every other rule
one (docs/game.md). x plays G's part and y D's: in the alternating order y steps first and x
then takes its gradient against y's new value, as the Trainer does (trainer.update).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganopt.games.games import Game
from ganopt.lookahead import LookaheadMinmax
from ganopt.optimizers import SGD, ExtraSGD, OptimisticSGD


@dataclass(frozen=True)
class Rule:
    """An update rule: each player's optimizer (from its parameters and the step size), the
    order of their steps, and lookahead-minmax's (k, alpha) where it wraps them."""

    label: str
    optimizer: Callable[[list[nn.Parameter], float], torch.optim.Optimizer]
    order: str = "alternating"
    extragradient: bool = False
    lookahead: tuple[int, float] | None = None
    evaluations_per_step: int = 1


def _sgd(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return SGD(params, lr=lr)


NEGATIVE_MOMENTUM = -0.5
LOOKAHEAD = (5, 0.5)  # k, alpha: Chavdarova et al.'s setting
RULES: dict[str, Rule] = {
    "simultaneous": Rule("simultaneous GD", _sgd, "simultaneous"),
    "alternating": Rule("alternating GD", _sgd),
    "extragradient": Rule(
        "extragradient (simultaneous)",
        lambda p, lr: ExtraSGD(p, lr=lr),
        "simultaneous",
        extragradient=True,
        evaluations_per_step=2,
    ),
    "extragradient_alternating": Rule(
        "extragradient look-ahead, alternating",
        lambda p, lr: ExtraSGD(p, lr=lr),
        extragradient=True,
        evaluations_per_step=2,
    ),
    "optimistic": Rule(
        "optimistic GD (simultaneous)", lambda p, lr: OptimisticSGD(p, lr=lr), "simultaneous"
    ),
    "lookahead": Rule(
        f"lookahead-minmax over alternating GD (k = {LOOKAHEAD[0]}, α = {LOOKAHEAD[1]})",
        _sgd,
        lookahead=LOOKAHEAD,
    ),
    "negative_momentum": Rule(
        f"alternating GD, momentum {NEGATIVE_MOMENTUM} on both players",
        lambda p, lr: SGD(p, lr=lr, momentum=NEGATIVE_MOMENTUM),
    ),
}


class Player(nn.Module):
    def __init__(self, start: Tensor) -> None:
        super().__init__()
        self.z = nn.Parameter(start.clone())


def play(game: Game, rule: Rule, lr: float, steps: int) -> list[tuple[int, float]]:
    """(gradient evaluations, distance to the equilibrium) after each step, from the start."""
    x, y = Player(game.start[0]), Player(game.start[1])
    opt_x, opt_y = rule.optimizer([x.z], lr), rule.optimizer([y.z], lr)
    lookahead = LookaheadMinmax([x, y], *rule.lookahead) if rule.lookahead else None
    curve = [(0, game.distance(x.z.detach(), y.z.detach()))]
    for step in range(1, steps + 1):
        if rule.extragradient:
            _one_pass(game, rule.order, x, y, opt_x.extrapolate, opt_y.extrapolate)
        _one_pass(game, rule.order, x, y, opt_x.step, opt_y.step)
        if lookahead is not None:
            lookahead.after_generator_step(step)
        curve.append((step * rule.evaluations_per_step, game.distance(x.z.detach(), y.z.detach())))
    return curve


def _one_pass(
    game: Game, order: str, x: Player, y: Player, step_x: Callable, step_y: Callable
) -> None:
    """Both players' gradients at one point then both steps (simultaneous), or y's gradient
    and step, then x's gradient at y's new value and x's step (alternating)."""
    if order == "simultaneous":
        x.z.grad, y.z.grad = _gradients(game, x, y)
        step_y()
        step_x()
        return
    y.z.grad = _gradients(game, x, y)[1]
    step_y()
    x.z.grad = _gradients(game, x, y)[0]
    step_x()


def _gradients(game: Game, x: Player, y: Player) -> tuple[Tensor, Tensor]:
    loss_x, loss_y = game.losses(x.z, y.z)
    return (
        torch.autograd.grad(loss_x, x.z, retain_graph=True)[0],
        torch.autograd.grad(loss_y, y.z)[0],
    )
