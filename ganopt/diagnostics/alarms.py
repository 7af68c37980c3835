"""Alerts: a loss that stops being finite, and a generator gradient that vanishes or explodes."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch
from torch import Tensor


class NonFiniteGuard:
    """Remembers, on the device, the first step at which each watched value (a network's loss,
    and on log steps its gradient norm) was not finite.

    ``record`` runs every step and costs one kernel: it copies the losses into a buffer on the
    device. ``watch`` tests values at once (log steps). ``fold`` turns the buffer into first bad
    steps without a sync; ``check`` folds, syncs, and is called only on log and checkpoint steps.
    """

    def __init__(self, names: Sequence[str], device: torch.device, capacity: int = 64) -> None:
        self.names = list(names)
        self.first_bad = torch.full((len(self.names),), math.inf, device=device)
        self._recorded = torch.zeros(capacity, len(self.names), device=device)
        self._first_recorded_step = 0
        self._count = 0  # rows of the buffer in use: consecutive steps from the first one

    def record(self, step: int, values: Sequence[Tensor]) -> None:
        """One 0-d tensor per name, once per step, steps in order."""
        if self._count == len(self._recorded):
            self.fold()
        if self._count == 0:
            self._first_recorded_step = step
        row = self._recorded[self._count]
        torch.stack([v.detach().float() for v in values], out=row)
        self._count += 1

    def watch(self, step: int, values: Sequence[Tensor]) -> None:
        """One tensor per name; any non-finite element marks that name at ``step``."""
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values])
        self.first_bad = torch.minimum(self.first_bad, torch.where(finite, math.inf, float(step)))

    def fold(self) -> None:
        """Move what ``record`` buffered into ``first_bad`` (device ops, no sync)."""
        if self._count == 0:
            return
        recorded = self._recorded[: self._count]
        steps = torch.arange(self._count, device=recorded.device) + self._first_recorded_step
        bad_at = torch.where(torch.isfinite(recorded), math.inf, steps[:, None].float())
        self.first_bad = torch.minimum(self.first_bad, bad_at.amin(dim=0))
        self._count = 0

    def check(self) -> tuple[str, int] | None:
        """The earliest (name, step) with a non-finite value, or None."""
        self.fold()
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
        self.sorted_history: list[float] = []  # sorted, so a median costs O(1) at log_every=1
        self.first_step: dict[str, int | None] = {"vanishing": None, "exploding": None}

    def update(self, step: int, grad_norm: float) -> list[str]:
        """Record one log step's norm; return the messages of alarms that fire now."""
        if not math.isfinite(grad_norm):
            return []
        earlier = self.sorted_history
        median = _median_of_sorted(earlier) if earlier else None
        bisect.insort(earlier, grad_norm)
        peak = earlier[-1]
        messages = []
        if grad_norm < self.vanishing_ratio * peak and self._fire("vanishing", step):
            messages.append(
                f"vanishing generator gradient at step {step}: ||grad G|| = {grad_norm:.3g} is "
                f"below {self.vanishing_ratio:g} x its running maximum {peak:.3g}"
            )
        exploding = median is not None and grad_norm > self.exploding_ratio * median
        if exploding and self._fire("exploding", step):
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
        return {"history": list(self.sorted_history), "first_step": dict(self.first_step)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.sorted_history = sorted(state["history"])
        self.first_step = dict(state["first_step"])

    def metrics(self) -> dict[str, int | None]:
        return {f"{kind}_step": step for kind, step in self.first_step.items()}


def _median_of_sorted(values: Sequence[float]) -> float:
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
