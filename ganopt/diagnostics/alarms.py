"""Alerts: a loss that stops being finite, and a generator gradient that vanishes or explodes."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch
from torch import Tensor


class NonFiniteGuard:
    """Remembers, on the device, the first step at which each watched value (a network's loss,
    and on log steps its gradient norm) was not finite.

    ``watch`` costs a few tiny kernels and never syncs; ``check`` syncs and is called only on
    log and checkpoint steps.
    """

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        self.names = list(names)
        self.first_bad = torch.full((len(self.names),), math.inf, device=device)

    def watch(self, step: int, values: Sequence[Tensor]) -> None:
        """One tensor per name; any non-finite element marks that name at ``step``."""
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values])
        self.first_bad = torch.minimum(self.first_bad, torch.where(finite, math.inf, float(step)))

    def check(self) -> tuple[str, int] | None:
        """The earliest (name, step) with a non-finite value, or None."""
        first = self.first_bad.tolist()
        bad = [
            (step, name)
            for name, step in zip(self.names, first, strict=True)
            if math.isfinite(step)
        ]
        if not bad:
            return None
        step, name = min(bad)
        return name, int(step)


class GradientAlarm:
    """Watches G's total gradient norm at log steps, on the host.

    *Vanishing*: the norm falls below ``vanishing_ratio`` × its running maximum.
    *Exploding*: it rises above ``exploding_ratio`` × the running median of earlier log steps.
    Each kind fires once, with a message; the first step is kept for metrics.json. The alarm
    reports, it never stops a run.
    """

    def __init__(self, vanishing_ratio: float = 1e-3, exploding_ratio: float = 1e3) -> None:
        self.vanishing_ratio = vanishing_ratio
        self.exploding_ratio = exploding_ratio
        self.history: list[float] = []
        self.first_step: dict[str, int | None] = {"vanishing": None, "exploding": None}

    def update(self, step: int, grad_norm: float) -> list[str]:
        """Record one log step's norm; return the messages of alarms that fire now."""
        if not math.isfinite(grad_norm):
            return []
        earlier, self.history = self.history, [*self.history, grad_norm]
        peak = max(self.history)
        messages = []
        if grad_norm < self.vanishing_ratio * peak and self._fire("vanishing", step):
            messages.append(
                f"vanishing generator gradient at step {step}: ||grad G|| = {grad_norm:.3g} is "
                f"below {self.vanishing_ratio:g} x its running maximum {peak:.3g}"
            )
        if earlier:
            median = statistics.median(earlier)
            if grad_norm > self.exploding_ratio * median and self._fire("exploding", step):
                messages.append(
                    f"exploding generator gradient at step {step}: ||grad G|| = {grad_norm:.3g}"
                    f" is above {self.exploding_ratio:g} x its running median {median:.3g}"
                )
        return messages

    def _fire(self, kind: str, step: int) -> bool:
        if self.first_step[kind] is not None:
            return False
        self.first_step[kind] = step
        return True

    def state_dict(self) -> dict[str, object]:
        return {"history": list(self.history), "first_step": dict(self.first_step)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.history = list(state["history"])
        self.first_step = dict(state["first_step"])

    def metrics(self) -> dict[str, int | None]:
        return {f"{kind}_step": step for kind, step in self.first_step.items()}
