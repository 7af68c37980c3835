"""trainer.flat_params (docs/performance.md): a network's parameters as views into one
contiguous buffer, which its optimizer steps as a single tensor.

Why: a CPU runs torch's optimizers tensor by tensor (its foreach kernels too loop over the
tensors), so Adam on an MLP of eight small tensors makes about a hundred calls per step, each
with its own overhead. Over one buffer it makes about twelve. The optimizers flattened here
update each element from that element's own weight, gradient and state and from numbers common
to the whole tensor (the learning rate, the step count), so stepping the buffer computes what
stepping each tensor does, element by element, with the same kernels; a test checks that
these kernels give the same bits wherever an element sits in a tensor, and another that runs
train to the same weights flattened or not. Checkpoints keep one state per parameter, as an
optimizer over the parameters writes them, so either kind of run resumes the other's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

#: optimizers whose update is elementwise (ganopt's extragradient and optimistic ones are
#: built on Adam and SGD); any other keeps its parameters as they are
ELEMENTWISE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.RMSprop)

#: what a checkpoint one buffer cannot hold asks for
SEPARATE = "resume with trainer.flat_params=false"


class MissingGradient(RuntimeError):
    """A flattened parameter that got no gradient: its optimizer would have skipped it."""


class FlatParameters:
    """``params`` (one network's, same dtype and device, each dense) moved into one buffer:
    each parameter's data becomes a view of ``flat``, with its own shape and strides (a
    channels-last convolution keeps its layout), and ``flat.grad`` holds the gradients that
    ``gather_grads`` copies from the parameters before a step. Backward passes still put each
    parameter's gradient on the parameter, where the diagnostics read them."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        first = params[0]
        total = sum(p.numel() for p in params)
        self.flat = nn.Parameter(torch.empty(total, dtype=first.dtype, device=first.device))
        self.flat.grad = torch.zeros_like(self.flat)
        self._grads = self._views(self.flat.grad)
        with torch.no_grad():
            for p, view in zip(params, self._views(self.flat.data), strict=True):
                view.copy_(p)
                p.data = view

    @staticmethod
    def fits(params: list[nn.Parameter]) -> bool:
        """Whether the parameters can share a buffer: all trained, one dtype and device, each
        dense and not 0-d (whose state could not be told from a step count)."""
        return bool(params) and all(
            p.requires_grad
            and p.dtype == params[0].dtype
            and p.device == params[0].device
            and p.dim() > 0
            and _dense(p)
            for p in params
        )

    def _views(self, buffer: Tensor) -> list[Tensor]:
        views, offset = [], 0
        for p in self.params:
            views.append(buffer.as_strided(p.shape, p.stride(), offset))
            offset += p.numel()
        return views

    def gather_grads(self) -> None:
        """Copy each parameter's gradient into ``flat.grad``, for the optimizer's step."""
        grads = [p.grad for p in self.params]
        if missing := sum(g is None for g in grads):
            raise MissingGradient(
                f"{missing} parameter(s) got no gradient, which trainer.flat_params cannot "
                "skip as a per-tensor optimizer would: run with trainer.flat_params=false"
            )
        torch._foreach_copy_(self._grads, grads)

    def per_parameter(self, state: dict[str, Any]) -> dict[str, Any]:
        """An optimizer's state_dict over ``flat`` as that of an optimizer over the
        parameters: each buffer-sized state split into per-parameter views, every other
        value (the step count) given to each parameter."""
        (group,) = state["param_groups"]
        saved = state["state"].get(group["params"][0], {})
        split = {key: self._split(v) if self._buffer_sized(v) else None for key, v in saved.items()}
        per = {  # each its own step count: a per-tensor optimizer increments each in place
            i: {
                key: _copy(value) if split[key] is None else split[key][i]
                for key, value in saved.items()
            }
            for i in range(len(self.params) if saved else 0)
        }
        ids = list(range(len(self.params)))
        return {"state": per, "param_groups": [group | {"params": ids}]}

    def flat_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The inverse of ``per_parameter``: a per-parameter optimizer state_dict (written by
        either kind of run) as one over ``flat``. Raises ValueError where the parameters'
        states cannot be one buffer's (a parameter that skipped steps)."""
        groups, per = state.get("param_groups"), state.get("state")
        if not (isinstance(groups, list) and len(groups) == 1 and isinstance(per, dict)):
            raise ValueError("expected one parameter group with per-parameter state")
        group = groups[0]
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(self.params):
            raise ValueError(f"expected {len(self.params)} parameters, got {ids!r}")
        entries = [per.get(i) for i in ids]
        merged: dict[str, Any] = {}
        if any(e is not None for e in entries):
            if any(not isinstance(e, dict) or set(e) != set(entries[0]) for e in entries):
                raise ValueError(
                    "the parameters' optimizer states differ in what they hold (one skipped "
                    f"steps), so they cannot be one buffer's; {SEPARATE}"
                )
            for key in entries[0]:
                merged[key] = self._merge(key, [e[key] for e in entries])
        return {"state": {0: merged} if merged else {}, "param_groups": [group | {"params": [0]}]}

    def _buffer_sized(self, value: object) -> bool:
        return isinstance(value, Tensor) and value.shape == self.flat.shape

    def _split(self, value: Tensor) -> list[Tensor]:
        return [view.clone() for view in self._views(value)]

    def _merge(self, key: str, values: list[object]) -> object:
        pairs = zip(values, self.params, strict=True)
        if all(isinstance(v, Tensor) and v.shape == p.shape for v, p in pairs):
            buffer = torch.empty_like(self.flat.data, dtype=values[0].dtype)
            torch._foreach_copy_(self._views(buffer), values)
            return buffer
        first = values[0]
        same = all(
            torch.equal(v, first)
            if isinstance(first, Tensor) and isinstance(v, Tensor)
            else v == first
            for v in values
        )
        if not same:
            raise ValueError(
                f"the parameters' {key} differ (one skipped steps), so they cannot be one "
                f"buffer's; {SEPARATE}"
            )
        return first


class FlatOptimizerState:
    """An optimizer over a ``FlatParameters`` buffer as a checkpoint part: it saves and loads
    the per-parameter state_dict that an optimizer over the parameters would (ganopt/state.py)."""

    def __init__(self, optimizer: torch.optim.Optimizer, flat: FlatParameters) -> None:
        self.optimizer, self.flat = optimizer, flat

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        return self.flat.per_parameter(self.optimizer.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(self.flat.flat_state(state))


def _copy(value: object) -> object:
    return value.clone() if isinstance(value, Tensor) else value


def _dense(p: Tensor) -> bool:
    """Laid out without gaps or overlaps: contiguous, or channels-last."""
    return p.is_contiguous() or (
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
    )
