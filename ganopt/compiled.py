"""trainer.compile (docs/performance.md): the training step's forward and backward passes
through torch.compile, on a CPU or a GPU; trainer.cuda_graphs also replays them as CUDA graphs.

torch.compile's autograd graphs cannot be differentiated twice, and R1, R2 and D's
input-gradient diagnostics differentiate D's output in its input with create_graph. The
objective makes each such input a leaf that requires grad (ganopt/objective.py, ``_d_input``),
and those passes run eagerly; the others run compiled. WGAN-GP's interpolates, lazy penalties,
log steps and the game's diagnostics use the eager networks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Network = Callable[[Tensor], Tensor]


class CompiledForward:
    """``module``'s forward, compiled, except for an input whose gradient a penalty takes."""

    def __init__(self, module: nn.Module, cuda_graphs: bool = False) -> None:
        self.module = module
        self.compiled = torch.compile(module, mode="reduce-overhead" if cuda_graphs else None)

    def __call__(self, x: Tensor) -> Tensor:
        if x.is_leaf and x.requires_grad:  # differentiated twice: autograd's eager graph
            return self.module(x)
        return self.compiled(x)


def cpu_compiler() -> str | None:
    """The C++ compiler torch.compile builds CPU kernels with ($CXX, else c++/g++/clang++)."""
    candidates = [os.environ.get("CXX"), "c++", "g++", "clang++"]
    return next((path for c in candidates if c and (path := shutil.which(c))), None)


@dataclass(frozen=True)
class Passes:
    """The modules a training step's passes go through: G and D as trained (their
    DistributedDataParallel wrappers under torchrun), and as only run (G for D's fakes, D
    frozen in G's step)."""

    G_train: Network
    D_train: Network
    G: Network
    D: Network

    def compiled(self, cuda_graphs: bool) -> Passes:
        """The same passes compiled; a module named twice (in a world of one) compiles once."""
        by_module: dict[int, CompiledForward] = {}
        for module in (self.G_train, self.D_train, self.G, self.D):
            by_module.setdefault(id(module), CompiledForward(module, cuda_graphs))
        return Passes(*(by_module[id(m)] for m in (self.G_train, self.D_train, self.G, self.D)))
