"""Whether D memorizes its training images (docs/limited_data.md), measured on log steps from
D's step: its mean output on the reals it trains on against a fixed batch of held-out reals
it never trains on (Karras et al. 2020, "Training Generative Adversarial Networks with Limited
Data", Fig. 1: the two drift apart as D overfits), and ADA's overfitting heuristic
r_t = E[sign(D(x_real))] over the training reals (section 3 there).

The held-out batch is seen as D sees its training reals (the same augmentation and instance
noise, from a copy of the training RNG that is put back after) by D in the mode of its step,
on copies of its buffers (BatchNorm's statistics, spectral norm's vectors): measuring never
moves the training trajectory, nor touches a tensor that D's step will differentiate through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from ganopt.diagnostics.report import report, reporting_due
from ganopt.tags import D_ADA_RT, D_OUT_HELDOUT, D_OUT_TRAIN, D_OVERFIT_GAP


@contextlib.contextmanager
def training_rng_kept(device: torch.device) -> Iterator[None]:
    """Random numbers drawn within come from a copy of the global RNG (the CPU's and
    ``device``'s), which is then put back as it was: training never sees the draws."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def on_buffer_copies(D: nn.Module, x: Tensor) -> Tensor:
    """D(x) as it runs now, its buffers replaced by copies: D's step has yet to differentiate
    through its own, which neither this forward nor a restoring copy may change in place."""
    buffers = {name: buffer.clone() for name, buffer in D.named_buffers()}
    return torch.func.functional_call(D, buffers, (x,))


class Memorization:
    """D/out_train, D/ada_rt and, with held-out reals, D/out_heldout and D/overfit_gap.

    ``heldout``: a fixed batch of held-out reals on the training device, or None where the
    data holds none out (data.holdout=0)."""

    def __init__(self, heldout: Tensor | None) -> None:
        self.heldout = heldout

    def report(
        self,
        D: nn.Module,
        out_real: Tensor,
        seen: Callable[[Tensor], Tensor],
        autocast: Callable[[], contextlib.AbstractContextManager],
    ) -> None:
        """On log steps only: D's logits ``out_real`` on the training reals of its step, and D
        on the held-out batch as ``seen`` shows it (D's input path), under ``autocast``."""
        if not reporting_due():
            return
        out_real = out_real.detach().float()
        out_train = out_real.mean()
        report(D_OUT_TRAIN, out_train)
        report(D_ADA_RT, torch.sign(out_real).mean())
        if self.heldout is None:
            return
        with torch.no_grad(), training_rng_kept(self.heldout.device):
            inputs = seen(self.heldout)
            with autocast():
                out_heldout = on_buffer_copies(D, inputs).float().mean()
        report(D_OUT_HELDOUT, out_heldout)
        report(D_OVERFIT_GAP, out_train - out_heldout)
