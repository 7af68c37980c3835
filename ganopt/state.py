"""A run's state, collected from the parts that hold it (as torchtitan's checkpointing does):
each part has ``state_dict``/``load_state_dict``; this adds the step and what a resume checks
(which loss and optimizers wrote a checkpoint, and the optimizers' settings from the config).
The top-level keys G, D, opt_G, opt_D, step and rng are the checkpoint's public contract."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from torch import Tensor

from ganopt.checkpoint import rng_state, set_rng_state

log = logging.getLogger("ganopt.trainer")


class Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


class GlobalRNG:
    """Every random generator a run draws from (torch CPU and CUDA, Python, NumPy)."""

    def state_dict(self) -> dict[str, Any]:
        return rng_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(state)


class RunState:
    """The parts of a run, by checkpoint key; ``step`` is the completed generator updates."""

    REQUIRED = ("G", "D", "opt_G", "opt_D", "step", "rng", "alarm", "identity")

    def __init__(
        self, parts: dict[str, Stateful], identity: dict[str, object], data_shape: tuple[int, ...]
    ) -> None:
        self.parts, self.identity, self.data_shape = parts, identity, list(data_shape)
        self.step = 0
        self.configured = {  # the optimizers' settings as the config made them
            name: [_hyperparameters(group) for group in parts[name].param_groups]
            for name in ("opt_G", "opt_D")
        }

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {name: part.state_dict() for name, part in self.parts.items()}
        return state | {
            "step": self.step,
            "identity": self.identity,
            "optim_config": self.configured,
            "data_shape": self.data_shape,  # what ganopt-sample rebuilds G for
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Continue from a checkpoint. Raises ValueError, naming what is wrong, for a
        checkpoint that lacks a part or was written by a run whose loss, optimizers or network
        shapes differ from this one's. Optimizer settings the config changed since (optim.g.lr
        ...) are applied, and said so."""
        if missing := [key for key in self.REQUIRED if key not in state]:
            raise ValueError(f"the checkpoint has no {', '.join(missing)}")
        self._check_identity(state["identity"])
        if "G_ema" in self.parts and "G_ema" not in state:
            raise ValueError("the checkpoint has no EMA weights, and this run keeps them")
        for name, part in self.parts.items():
            if name in state:  # data and recorder state are absent from some checkpoints
                saved = self._configured(name, state[name])
                _load_part(name, lambda p=part, s=saved: p.load_state_dict(s))
        self._report_changed_settings(state.get("optim_config"))
        self.step = _load_part("step", lambda: _step(state["step"]))

    def _check_identity(self, saved: object) -> None:
        """The run that wrote the checkpoint is this one: the same components by name and the
        same network shapes, compared whole. A missing or malformed identity is refused."""
        if not isinstance(saved, dict) or set(saved) != set(self.identity):
            raise ValueError(
                "the checkpoint's identity (components and network shapes) is missing or "
                "malformed, so it cannot be matched to this run; refused"
            )
        if saved == self.identity:
            return
        components, ours = saved.get("components"), self.identity["components"]
        if isinstance(components, dict) and isinstance(ours, dict):
            for key in sorted(set(components) | set(ours), key=str):
                if components.get(key) != ours.get(key):  # a slot left out is none (aug)
                    raise ValueError(
                        f"the checkpoint's {key} is {components.get(key, 'none')}, this run's is "
                        f"{ours.get(key, 'none')}"
                    )
        for network in ("G", "D"):
            theirs, mine = saved.get(network), self.identity[network]
            if theirs != mine and isinstance(theirs, dict) and isinstance(mine, dict):
                name = next(n for n in [*mine, *theirs] if theirs.get(n) != mine.get(n))
                raise ValueError(
                    f"the checkpoint's {network} does not fit this config: parameter {name} "
                    f"has shape {theirs.get(name)} there, {mine.get(name)} here"
                )
        raise ValueError("the checkpoint's identity differs from this run's; refused")

    def _configured(self, name: str, saved: object) -> object:
        """An optimizer's saved state with the config's settings in place of the saved ones:
        a resume with ``optim.g.lr=0.01`` trains at 0.01, as the recorded config says (a
        schedule, if any, scales it from the next step), and one with ``trainer.fused=true``
        steps fused, its step counts loaded where fused kernels keep them."""
        configured = self.configured.get(name)
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if configured is None or not isinstance(groups, list) or len(groups) != len(configured):
            return saved  # not an optimizer, or its own load says what does not fit
        pairs = zip(groups, configured, strict=True)
        groups = [g | c if isinstance(g, dict) else g for g, c in pairs]
        return saved | {"param_groups": groups}

    def _report_changed_settings(self, saved: object) -> None:
        changes = []
        for name in ("opt_G", "opt_D"):
            groups = saved.get(name) if isinstance(saved, dict) else None
            for i, configured in enumerate(self.configured[name]):
                before = groups[i] if isinstance(groups, list) and i < len(groups) else {}
                before = before if isinstance(before, dict) else {}
                changes += [
                    f"{name} {key} {before[key]} -> {value}"
                    for key, value in configured.items()
                    if key in before and _plain(before[key]) != _plain(value)
                ]
        if changes:
            log.warning("resume applies the config's changed settings: %s", "; ".join(changes))


def _hyperparameters(group: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in group.items() if k != "params" and not isinstance(v, Tensor)}


def _load_part(name: str, load: Callable[[], object]) -> object:
    """Load one part of a checkpoint; whatever goes wrong is a ValueError naming the part."""
    try:
        return load()
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise ValueError(f"the checkpoint's {name} does not fit this config: {detail}") from None


def _step(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"step must be an int >= 0, got {value!r}")
    return value


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
