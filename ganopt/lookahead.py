"""Lookahead-minmax (Chavdarova et al. 2021, "Taming GANs with Lookahead-Minmax"): both
players keep slow weights; every ``k`` generator steps of their own optimizers (the fast
steps), both slow weights move ``alpha`` of the way to the fast ones, and the fast weights
restart from there. On a game whose vector field rotates, the average over k fast steps cancels
much of the rotation, which is why it stabilizes GANs (docs/game.md).

It acts on both players at once, after the generator's step, so it belongs to the loop's
update (ganopt/updates.py), not to either optimizer; each player's optimizer state (Adam's
moments) carries on through the synchronization, as in the paper's code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LookaheadMinmax:
    def __init__(self, players: Sequence[nn.Module], k: int, alpha: float) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.k, self.alpha = k, float(alpha)
        self.params = [p for player in players for p in player.parameters() if p.requires_grad]
        self.slow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def after_generator_step(self, step: int) -> None:
        """Every k-th generator step: slow += alpha (fast - slow); fast = slow."""
        if step % self.k:
            return
        torch._foreach_lerp_(self.slow, [p.detach() for p in self.params], self.alpha)
        for p, slow in zip(self.params, self.slow, strict=True):
            p.copy_(slow)

    def state_dict(self) -> dict[str, object]:
        return {"k": self.k, "alpha": self.alpha, "slow": [s.clone() for s in self.slow]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        slow = state["slow"]
        if not isinstance(slow, list) or len(slow) != len(self.slow):
            raise ValueError("the slow weights do not match the networks")
        for mine, saved in zip(self.slow, slow, strict=True):
            if not isinstance(saved, Tensor) or saved.shape != mine.shape:
                raise ValueError("the slow weights do not match the networks")
            mine.copy_(saved)

    def __repr__(self) -> str:
        return f"lookahead(k={self.k}, alpha={self.alpha:g})"
