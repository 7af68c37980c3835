"""Each network's optimizer, from its registered name: the implementation torch runs (fused,
foreach, or one buffer of the network's parameters) and the switches torch leaves unchecked."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from ganopt.config import ConfigError, is_number
from ganopt.eager import without_compiler
from ganopt.flat import ELEMENTWISE, FlatParameters
from ganopt.regularizers import Regularizer
from ganopt.setup.registry import arguments, component, plain

log = logging.getLogger(__name__)


def lazily_regularized(regularizers: list[Regularizer]) -> set[str]:
    """The networks a lazy regularizer steps on its own. Such a step leaves some weights
    without a gradient (R1 does not reach D's last bias), which a per-tensor optimizer skips
    and one buffer (trainer.flat_params) could not."""
    lazy = [r.network for r in regularizers if r.every > 1]
    return {name for network in lazy for name in ("GD" if network == "both" else network)}


def build_optimizer(
    key: str, node: object, network: nn.Module, fused: bool = False, flat: bool = False
) -> tuple[torch.optim.Optimizer, FlatParameters | None]:
    """``optim.g``/``optim.d`` over ``network``'s parameters, built now so that a bad argument
    fails here, naming the key. ``betas: [0, 0.9]`` (ints from the command line) become floats.
    ``flat`` (trainer.flat_params): an elementwise optimizer steps the parameters as one
    buffer (ganopt/flat.py), returned beside it. ``fused``: torch's fused kernels where the
    optimizer has them (docs/performance.md); otherwise, over separate tensors, its foreach
    implementation, which torch picks by itself on CUDA but not on a CPU, and which computes
    what the per-tensor loop does, bit for bit, in fewer calls. An ``optim.g.fused`` or
    ``optim.g.foreach`` of the config wins."""
    chosen = component(key, plain(node))
    optimizer, settings = chosen.factory, dict(chosen.kwargs)
    _check_switches(key, optimizer, settings)
    params = list(network.parameters())
    elementwise = isinstance(optimizer, type) and issubclass(optimizer, ELEMENTWISE)
    buffer = (
        FlatParameters(params) if flat and elementwise and FlatParameters.fits(params) else None
    )
    if buffer is not None:
        params = [buffer.flat]
    settings |= _implementation(key, optimizer, settings, fused, single=buffer is not None)
    if "betas" in settings:
        betas = settings["betas"]
        numbers = isinstance(betas, (list, tuple)) and len(betas) == 2
        if not numbers or not all(is_number(b) for b in betas):
            raise ConfigError([f"{key}.betas: must be two numbers, got {betas!r}"])
        settings["betas"] = tuple(float(b) for b in betas)
    if isinstance(optimizer, type):
        without_compiler(optimizer)  # no torch._dynamo for a run that compiles nothing
    try:
        return optimizer(params, **settings), buffer
    except (TypeError, ValueError, RuntimeError, IndexError) as e:
        raise ConfigError([f"{key}: {e}"]) from None


def _implementation(
    key: str, optimizer: type, settings: Mapping[str, object], fused: bool, single: bool
) -> dict[str, bool]:
    """The keyword that picks the optimizer's implementation: fused, foreach, or none. On a
    ``single`` tensor (trainer.flat_params) the per-tensor loop makes fewer calls than foreach."""
    if "fused" in settings or "foreach" in settings:
        return {}
    parameters = arguments(optimizer)
    if fused:
        if "fused" in parameters:
            return {"fused": True}
        instead = "its loop over one buffer" if single else "foreach kernels"
        log.info(
            "trainer.fused: %s has no fused kernel, so %s runs %s", optimizer.__name__, key, instead
        )
    return {"foreach": not single} if "foreach" in parameters else {}


def _check_switches(key: str, optimizer: type, settings: Mapping[str, object]) -> None:
    """torch's optimizers take their switches (amsgrad, nesterov, foreach, fused...) unchecked,
    so ``+optim.d.foreach=maybe`` would run as true: each must be true or false (foreach and
    fused, whose default is torch's choice, may also be null)."""
    parameters = arguments(optimizer)
    for name, value in settings.items():
        optional = name in ("foreach", "fused")
        if not (isinstance(parameters[name].default, bool) or optional):
            continue
        if not isinstance(value, bool) and not (optional and value is None):
            choices = "true, false or null" if optional else "true or false"
            raise ConfigError([f"{key}.{name}: must be {choices}, got {value!r}"])
