"""Statistics gathered on the device and read on the host once per log step."""

from __future__ import annotations

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
    with torch.no_grad():  # most are 0-d float32 already: no op for them
        scalars = [
            v if v.dim() == 0 and v.dtype == torch.float32 else v.float().reshape(())
            for v in stats.values()
        ]
        values = torch.stack(scalars).tolist()
    return dict(zip(stats.keys(), values, strict=True))


class Probe:
    """What one log step records, still on the device: 0-d scalars and histogram tensors.

    The Trainer creates one on log steps only and hands it to the measurements; between log
    steps there is no probe and nothing is measured.
    """

    def __init__(self, histograms: bool = False) -> None:
        self.histograms = histograms
        self.scalars: dict[str, Tensor] = {}
        self.hists: dict[str, Tensor] = {}
