"""Games with a known equilibrium, the update rules played on them with ganopt's own optimizers,
and what theory predicts (docs/game.md, "Games with a known answer"); scripts/games.py runs
them."""

from ganopt.games.games import Bilinear, Dirac, Game, LinearGame, Quadratic
from ganopt.games.rules import RULES, Rule, play
from ganopt.games.theory import CLOSED_FORM, closed_form, predict

__all__ = ["CLOSED_FORM", "RULES", "Bilinear", "Dirac", "Game", "LinearGame", "Quadratic"]
__all__ += ["Rule", "closed_form", "play", "predict"]
