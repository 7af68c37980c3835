"""Statistics gathered on the device and read on the host once per log step."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


def grad_norms(prefix: str, named_params: Sequence[tuple[str, nn.Parameter]]) -> dict[str, Tensor]:
    """L2 norm of each parameter's gradient and of all of them together, as 0-d device tensors.

    Keys are ``{prefix}/{name}`` and ``{prefix}/total``. One foreach kernel computes all the
    per-parameter norms; nothing is copied to the host.
    """
    with_grad = [(n, p.grad) for n, p in named_params if p.grad is not None]
    norms = torch._foreach_norm([g for _, g in with_grad]) if with_grad else []
    stats = {f"{prefix}/{name}": norm for (name, _), norm in zip(with_grad, norms, strict=True)}
    device = named_params[0][1].device
    stats[f"{prefix}/total"] = (
        torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros((), device=device)
    )
    return stats


def to_host(stats: Mapping[str, Tensor]) -> dict[str, float]:
    """Copy 0-d device tensors to Python floats in a single transfer: the log step's sync."""
    if not stats:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for v in stats.values()]).tolist()
    return dict(zip(stats.keys(), values, strict=True))


class NonFiniteGuard:
    """Remembers, on the device, the first step at which each watched loss was not finite.

    ``watch`` costs a few tiny kernels and never syncs; ``check`` syncs and is called only on
    log and checkpoint steps.
    """

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        self.names = list(names)
        self.first_bad = torch.full((len(self.names),), math.inf, device=device)

    def watch(self, step: int, losses: Sequence[Tensor]) -> None:
        finite = torch.isfinite(torch.stack([loss.detach().float() for loss in losses]))
        self.first_bad = torch.minimum(self.first_bad, torch.where(finite, math.inf, float(step)))

    def check(self) -> tuple[str, int] | None:
        """The earliest (name, step) with a non-finite loss, or None."""
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
