"""Alerts: a loss that stops being finite, and a generator gradient that vanishes or explodes."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ganopt.tags import GRAD_NORM_TOTAL, UPDATE_RATIO_TOTAL


class NonFiniteGuard:
    """Remembers, on the device, the first step at which each watched value (a network's loss,
    and on log steps its gradient norm) was not finite.

    ``record`` runs every step and costs no kernel: it keeps the losses (0-d tensors on the
    device, each step's own). ``watch`` tests values at once (log steps). ``fold`` turns the kept
    losses into first bad steps, one stack and one test for up to ``capacity`` steps, without a
    sync; ``check`` folds, syncs, and is called only on log and checkpoint steps.
    """

    def __init__(self, names: Sequence[str], device: torch.device, capacity: int = 64) -> None:
        self.names = list(names)
        self.first_bad = torch.full((len(self.names),), math.inf, device=device)
        self.capacity = capacity
        self._recorded: list[Tensor] = []  # the values of consecutive steps, name by name
        self._first_recorded_step = 0

    def record(self, step: int, values: Sequence[Tensor]) -> None:
        """One 0-d tensor per name, once per step, steps in order."""
        if not self._recorded:
            self._first_recorded_step = step
        self._recorded.extend(values)
        if len(self._recorded) == self.capacity * len(self.names):
            self.fold()

    def watch(self, step: int, values: Sequence[Tensor]) -> None:
        """One tensor per name; any non-finite element marks that name at ``step``."""
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values])
        self.first_bad = torch.minimum(self.first_bad, torch.where(finite, math.inf, float(step)))

    def fold(self) -> None:
        """Move what ``record`` buffered into ``first_bad`` (device ops, no sync)."""
        if not self._recorded:
            return
        values = torch.stack([v.detach().float() for v in self._recorded])
        recorded = values.view(-1, len(self.names))
        steps = torch.arange(len(recorded), device=recorded.device) + self._first_recorded_step
        bad_at = torch.where(torch.isfinite(recorded), math.inf, steps[:, None].float())
        self.first_bad = torch.minimum(self.first_bad, bad_at.amin(dim=0))
        self._recorded = []

    def check(self, across: Callable[[Tensor], Tensor] | None = None) -> tuple[str, int] | None:
        """The earliest (name, step) with a non-finite value, or None. ``across`` reduces the
        first bad steps over processes (World.all_min): divergence on one rank is divergence
        on all."""
        self.fold()
        if across is not None:
            across(self.first_bad)
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


class _History:
    """One series of log-step values, kept sorted so its median and maximum cost O(1) even at
    log_every=1."""

    def __init__(self, values: Sequence[float] = ()) -> None:
        self.sorted: list[float] = sorted(values)

    def median(self) -> float | None:
        values, middle = self.sorted, len(self.sorted) // 2
        if not values:
            return None
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

    def add(self, value: float) -> None:
        bisect.insort(self.sorted, value)


class GradientAlarm:
    """Watches the log steps' gradient norms and G's update size, on the host.

    *Vanishing*: G's gradient norm falls below ``vanishing_ratio`` × its running maximum.
    *Exploding*: G's or D's gradient norm rises above ``exploding_ratio`` × the running median
    of that network's earlier log steps — usually several log steps before it turns NaN.
    *Not learning*: G's update-to-weight ratio ‖Δθ‖/‖θ‖ stays below ``stalled_ratio`` for
    ``stalled_logs`` log steps in a row, whatever its loss says; unlike the vanishing alarm,
    which is relative to G's own maximum, this catches a gradient that was dead from step 1.
    The ratio is compared at the configured learning rate (divided by the schedule's factor), so
    a learning rate that a schedule decays toward 0 on purpose is not taken for a stall.

    Each kind fires once, with a message; its first step is kept for metrics.json. The alarm
    reports, it never stops a run.
    """

    KINDS = ("vanishing", "exploding", "stalled")

    def __init__(
        self,
        vanishing_ratio: float = 1e-3,
        exploding_ratio: float = 1e2,
        stalled_ratio: float = 1e-6,
        stalled_logs: int = 3,
    ) -> None:
        self.vanishing_ratio = vanishing_ratio
        self.exploding_ratio = exploding_ratio
        self.stalled_ratio = stalled_ratio
        self.stalled_logs = stalled_logs
        self.history = {"G": _History(), "D": _History()}
        self.stalled_run = 0  # consecutive log steps with G's update ratio below the bound
        self.first_step: dict[str, int | None] = dict.fromkeys(self.KINDS)
        self.exploding_network: str | None = None

    def update(
        self,
        step: int,
        values: Mapping[str, float],
        record: bool = True,
        lr_factor: float = 1.0,
    ) -> list[str]:
        """Read one log step's host values; return the messages of alarms that fire now.

        ``lr_factor`` is the multiplier the learning-rate schedule applied at this step; the
        stall test is skipped where it is 0.

        ``record=False`` (a run's last step when it is not a regular log step) checks the
        values against the history without adding them, so the history holds the same steps
        whether a run is trained at once or split by a resume."""
        messages = []
        for network in ("G", "D"):
            norm = values.get(GRAD_NORM_TOTAL[network])
            if norm is not None and math.isfinite(norm):
                messages += self._watch_norm(step, network, norm, record)
        ratio = values.get(UPDATE_RATIO_TOTAL["G"])
        if ratio is not None and math.isfinite(ratio) and lr_factor > 0:
            ratio /= lr_factor
            run = self.stalled_run + 1 if ratio < self.stalled_ratio else 0
            if record:
                self.stalled_run = run
            if run >= self.stalled_logs and self._fire("stalled", step):
                messages.append(
                    f"generator not learning at step {step}: its update-to-weight ratio "
                    f"||dtheta||/||theta|| = {ratio:.3g} has stayed below {self.stalled_ratio:g} "
                    f"for {run} log steps (look at grad_norm/G/total and the "
                    f"learning rates)"
                )
        return messages

    def _watch_norm(self, step: int, network: str, norm: float, record: bool) -> list[str]:
        history = self.history[network]
        median = history.median()
        peak = max(history.sorted[-1], norm) if history.sorted else norm
        if record:
            history.add(norm)
        messages = []
        name = "generator" if network == "G" else "discriminator"
        if network == "G" and norm < self.vanishing_ratio * peak and self._fire("vanishing", step):
            messages.append(
                f"vanishing generator gradient at step {step}: ||grad G|| = {norm:.3g} is "
                f"below {self.vanishing_ratio:g} x its running maximum {peak:.3g}"
            )
        exploding = median is not None and norm > self.exploding_ratio * median
        if exploding and self._fire("exploding", step):
            self.exploding_network = network
            messages.append(
                f"exploding {name} gradient at step {step}: ||grad {network}|| = {norm:.3g}"
                f" is above {self.exploding_ratio:g} x its running median {median:.3g}"
            )
        return messages

    def _fire(self, kind: str, step: int) -> bool:
        if self.first_step[kind] is not None:
            return False
        self.first_step[kind] = step
        return True

    def state_dict(self) -> dict[str, object]:
        return {
            "history": {net: list(h.sorted) for net, h in self.history.items()},
            "stalled_run": self.stalled_run,
            "first_step": dict(self.first_step),
            "exploding_network": self.exploding_network,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.history = {net: _History(values) for net, values in state["history"].items()}
        self.stalled_run = int(state["stalled_run"])
        self.first_step = dict(state["first_step"])
        self.exploding_network = state["exploding_network"]

    def metrics(self) -> dict[str, int | str | None]:
        """``vanishing_step``, ``exploding_step`` (+ ``exploding_network``), ``stalled_step``."""
        steps = {f"{kind}_step": step for kind, step in self.first_step.items()}
        return steps | {"exploding_network": self.exploding_network}
