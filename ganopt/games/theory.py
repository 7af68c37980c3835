"""What theory predicts for the SGD-based rules on a linear game (ganopt/games/games.py): every
rule is a linear recurrence in the error e = z - z*, computed here in float64 with numpy, written
apart from the optimizers it checks; and for simultaneous GD and extragradient, closed forms.

On the bilinear game, a singular value σ of A makes a rotation, and per step of size h
simultaneous GD multiplies that component's distance by sqrt(1 + h²σ²) (it spirals out),
extragradient by sqrt(1 - h²σ² + h⁴σ⁴) (it spirals in): |1 - ihσ| and |1 - ihσ - h²σ²|. On the
quadratic game every eigenvalue λ of J has the same modulus, so the whole distance shrinks by
|1 - hλ| and |1 - hλ + h²λ²| per step.
"""

from __future__ import annotations

import math

import numpy as np

from ganopt.games.games import Bilinear, Dirac, Game, LinearGame, Quadratic
from ganopt.games.rules import LOOKAHEAD, NEGATIVE_MOMENTUM

#: rules with a closed form here
CLOSED_FORM = ("simultaneous", "extragradient")


def predict(game: LinearGame, rule: str, lr: float, steps: int) -> list[float]:
    """The distance to the equilibrium after each step (from the start), by the recurrence."""
    J = game.jacobian.numpy()
    n = J.shape[0] // 2
    e = np.concatenate([(s - q).numpy() for s, q in zip(game.start, game.equilibrium, strict=True)])
    step = _STEPS[rule]
    state: dict[str, np.ndarray] = {}
    distances = [float(np.linalg.norm(e))]
    slow = e.copy()
    for t in range(1, steps + 1):
        e = step(J, n, lr, e, state)
        if rule == "lookahead" and t % LOOKAHEAD[0] == 0:
            slow = slow + LOOKAHEAD[1] * (e - slow)
            e = slow.copy()
        distances.append(float(np.linalg.norm(e)))
    return distances


def closed_form(game: Game, rule: str, lr: float, steps: int) -> list[float]:
    """Simultaneous GD and extragradient on the bilinear and the quadratic game, exact; on the
    Dirac-GAN, the rate of its linearization at the equilibrium (a rotation at ±i/2), which
    holds only near it."""
    factor = {"simultaneous": lambda a: abs(1 - a), "extragradient": lambda a: abs(1 - a + a * a)}
    if rule not in factor:
        raise ValueError(f"no closed form for {rule}")
    if isinstance(game, (Quadratic, Dirac)):  # the Dirac-GAN's linearization at (0, 0)
        eigenvalue = game.eigenvalue if isinstance(game, Quadratic) else 0.5j
        d0, f = game.distance(*game.start), factor[rule](lr * eigenvalue)
        return [d0 * f**t for t in range(steps + 1)]
    if not isinstance(game, Bilinear):
        raise ValueError(f"no closed form on the {game.name} game")
    ex, ey = (s - q for s, q in zip(game.start, game.equilibrium, strict=True))
    # the part of the error in each singular pair (u_i for x, v_i for y) turns by itself
    parts = ((game.U.T @ ex) ** 2 + (game.V.T @ ey) ** 2).numpy()
    f = np.array([factor[rule](1j * lr * s) for s in game.sigma.tolist()])
    return [math.sqrt(float((parts * f ** (2 * t)).sum())) for t in range(steps + 1)]


def _field(J: np.ndarray, e: np.ndarray) -> np.ndarray:
    return J @ e


def _simultaneous(J, n, h, e, state):
    return e - h * _field(J, e)


def _alternating(J, n, h, e, state):
    e = e.copy()
    e[n:] -= h * (J[n:] @ e)
    e[:n] -= h * (J[:n] @ e)
    return e


def _extragradient(J, n, h, e, state):
    return e - h * _field(J, e - h * _field(J, e))


def _extragradient_alternating(J, n, h, e, state):
    look = _alternating(J, n, h, e, state)  # the look-ahead, alternating
    new = e.copy()
    at = look.copy()
    new[n:] = e[n:] - h * (J[n:] @ at)  # y's gradient at the look-ahead point
    at[n:] = new[n:]  # x's gradient at its look-ahead against y's new value
    new[:n] = e[:n] - h * (J[:n] @ at)
    return new


def _optimistic(J, n, h, e, state):
    update = -h * _field(J, e)
    previous = state.get("update", np.zeros_like(e))
    state["update"] = update
    return e + 2 * update - previous


def _negative_momentum(J, n, h, e, state):
    """Heavy ball on both players, y first: b = β b + g (b = g at the first step)."""
    e = e.copy()
    for block in (slice(n, None), slice(None, n)):
        g = J[block] @ e
        b = state.get(str(block))
        b = g if b is None else NEGATIVE_MOMENTUM * b + g
        state[str(block)] = b
        e[block] -= h * b
    return e


_STEPS = {
    "simultaneous": _simultaneous,
    "alternating": _alternating,
    "extragradient": _extragradient,
    "extragradient_alternating": _extragradient_alternating,
    "optimistic": _optimistic,
    "lookahead": _alternating,
    "negative_momentum": _negative_momentum,
}
