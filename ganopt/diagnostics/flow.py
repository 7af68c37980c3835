"""Gradient flow through depth: one network's per-layer gradient norms over the log steps.

The vanishing gradient is a statement about depth (the norm shrinks layer by layer toward the
input) and about time (it shrinks as D wins). A layers × steps heatmap shows both at a glance,
where 25 separate per-layer charts do not (docs/tensorboard.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ganopt.rendering import FlowPicture
from ganopt.tags import GRAD_NORM


class GradientFlow:
    """Collects ``grad_norm/<network>/<param>`` of every weight (biases left out) at each log
    step, in the network's parameter order: input first."""

    def __init__(self, network: str) -> None:
        self.network = network
        self.prefix = f"{GRAD_NORM}/{network}/"
        self.layers: list[str] = []
        self.steps: list[int] = []
        self.rows: list[list[float]] = []  # one per step

    def add(self, step: int, values: Mapping[str, float]) -> None:
        """One log step's host values; a step without per-layer norms is skipped."""
        if not self.layers:
            self.layers = [
                tag.removeprefix(self.prefix)
                for tag in values
                if tag.startswith(self.prefix) and tag != f"{self.prefix}total"
                if not tag.endswith("bias")
            ]
        row = [values.get(self.prefix + layer, math.nan) for layer in self.layers]
        if self.layers and not all(math.isnan(v) for v in row):
            self.steps.append(step)
            self.rows.append(row)

    def state_dict(self) -> dict[str, object]:
        """What the figure of a resumed run needs from before: checkpoints keep it, so that
        gradient_flow.png covers the whole run, where vanishing shows first."""
        rows = torch.tensor(self.rows, dtype=torch.float64).reshape(
            len(self.rows), len(self.layers)
        )
        return {"layers": list(self.layers), "steps": torch.tensor(self.steps), "rows": rows}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.layers = [str(name) for name in state["layers"]]  # type: ignore[union-attr]
        self.steps = [int(s) for s in state["steps"]]  # type: ignore[union-attr]
        self.rows = [list(map(float, row)) for row in state["rows"]]  # type: ignore[union-attr]

    def picture(self) -> FlowPicture:
        """What its heatmap draws, as it stands (a copy: this one goes on collecting)."""
        return FlowPicture(self.network, list(self.layers), list(self.steps), self.matrix())

    def matrix(self) -> np.ndarray:
        """(layers, steps): the output layer in row 0, the input layer last, as the picture
        draws them."""
        if not self.rows:
            return np.zeros((len(self.layers), 0))
        return np.asarray(self.rows, dtype=float).T[::-1]
