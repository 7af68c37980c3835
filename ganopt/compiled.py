"""trainer.compile (docs/performance.md): the training step's forward and backward passes
through torch.compile, on a CPU or a GPU; trainer.cuda_graphs also replays them as CUDA graphs.

torch.compile's autograd graphs cannot be differentiated twice, and R1, R2 and D's
input-gradient diagnostics differentiate D's output in its input with create_graph. The
objective makes each such input a leaf that requires grad (ganopt/objective.py, ``_d_input``),
and those passes run eagerly; the others run compiled. WGAN-GP's interpolates, lazy penalties,
log steps and the game's diagnostics use the eager networks.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

Network = Callable[[Tensor], Tensor]

log = logging.getLogger("ganopt.trainer")


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


class _State(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


class StepPasses:
    """The passes of each training step: eager on log steps (where diagnostics read the graph),
    compiled between them under trainer.compile, and the fall-back when compiling fails."""

    def __init__(self, eager: Passes, compile: bool, cuda_graphs: bool) -> None:
        self.eager, self.cuda_graphs = eager, cuda_graphs
        self.compiled = eager.compiled(cuda_graphs) if compile else None

    def for_step(self, logged: bool) -> Passes:
        passes = self.compiled if self.compiled is not None and not logged else self.eager
        if passes is self.compiled and self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # last step's replays are not read again
        return passes

    def warm_up(
        self, two_steps: Callable[[], None], state: _State, reset: Callable[[], None]
    ) -> float | None:
        """Compile before training: two steps, then back to the state from before them, so
        that the run trains as it would have. Where torch.compile fails on a model (torch 2.11
        did on DCGAN's convolutions), fall back to compiled passes without CUDA graphs, then to
        eager ones, and say why. The seconds compiling took (None for an eager run)."""
        saved = copy.deepcopy(state.state_dict())
        started = time.perf_counter()
        while self.compiled is not None:
            try:
                two_steps()
                break
            except Exception as e:
                self._fall_back(e)
                reset()  # the failure may have come in G's step, D frozen
                state.load_state_dict(copy.deepcopy(saved))  # optimizers keep what they load
        seconds = time.perf_counter() - started
        state.load_state_dict(saved)
        if self.compiled is None:
            return None
        log.info("trainer.compile: the step's passes compiled in %.1f s", seconds)
        return seconds

    def _fall_back(self, error: Exception) -> None:
        """One step back from what failed: CUDA graphs, then compilation."""
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        setting = "trainer.cuda_graphs" if self.cuda_graphs else "trainer.compile"
        instead = "compiled passes without CUDA graphs" if self.cuda_graphs else "eager passes"
        log.warning("%s failed on this model, so the run uses %s: %s", setting, instead, reason)
        torch.compiler.reset()
        self.compiled = self.eager.compiled(cuda_graphs=False) if self.cuda_graphs else None
        self.cuda_graphs = False
