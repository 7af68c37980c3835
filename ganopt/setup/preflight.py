"""A dry run before training: G and D forward on two samples, so that a network or data source
that cannot run fails before a run starts, naming its key, and a batch that cannot fit in
memory is refused with the estimate."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import nn

from ganopt.config import ConfigError

#: bytes of activations per sample element kept for one step: the forward's saved tensors,
#: their gradients, and a penalty's second backward; a rough factor, for an upper estimate
BYTES_PER_ACTIVATION = 4 * 3


def dry_run(
    G: nn.Module, D: nn.Module, data: object, batch_size: int, device: torch.device
) -> None:
    """One forward of G and D on two samples, in eval mode, without gradients, from a private
    RNG: a network or data source that cannot run fails here, naming its key, instead of once
    training has started; and the activations it counts estimate what a batch will need, so a
    batch that cannot fit is refused with the estimate. Changes no state."""
    data_rng = torch.Generator(device=data.rng_device).manual_seed(0)
    rng = torch.Generator(device=device).manual_seed(0)
    counts = {"G": 0, "D": 0}
    modes = G.training, D.training
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out, k=key: counts.__setitem__(k, counts[k] + out.numel())
        )
        for key, net in (("G", G), ("D", D))
        for m in net.modules()
        if not list(m.children())
    ]
    G.eval(), D.eval()
    try:
        with torch.no_grad():
            real = _run("data", lambda: data.sample(2, generator=data_rng))
            z = torch.randn(2, G.z_dim, device=device, generator=rng)
            fake = _run("model.g", lambda: G(z))
            if tuple(fake.shape[1:]) != tuple(data.shape):
                raise ConfigError(
                    [
                        f"model.g: makes samples of shape {tuple(fake.shape[1:])}, the data's are "
                        f"{tuple(data.shape)}"
                    ]
                )
            out = _run("model.d", lambda: D(torch.cat([real, fake])))
            if tuple(out.shape) != (4,):
                raise ConfigError(
                    [f"model.d: must give one logit per sample, gave {tuple(out.shape)}"]
                )
    finally:
        for hook in hooks:
            hook.remove()
        G.train(modes[0]), D.train(modes[1])
    per_sample = counts["G"] / 2 + counts["D"] / 4 * 2 + math.prod(data.shape) * 2
    _refuse_oversized_batch(batch_size, per_sample * BYTES_PER_ACTIVATION, device)


def _run(key: str, step: Callable[[], torch.Tensor]) -> torch.Tensor:
    try:
        return step()
    except ConfigError:
        raise
    except Exception as e:  # any failure of a network or data source on a tiny batch
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError([f"{key}: cannot run ({first})"]) from None


def _refuse_oversized_batch(batch_size: int, bytes_per_sample: float, device: torch.device) -> None:
    needed = batch_size * bytes_per_sample
    available = available_memory(device)
    if available is not None and needed > available:
        raise ConfigError(
            [
                f"trainer.batch_size: {batch_size} needs about {_gb(needed)} for one step's "
                f"activations (an estimate), and {device} has {_gb(available)} available"
            ]
        )


def available_memory(device: torch.device) -> float | None:
    """Free bytes on ``device``: CUDA's own count, or the kernel's MemAvailable on Linux."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"
