"""An evaluation beside training: the sampler's weights of one step, copied on the training
thread, evaluated on a thread of its own while training goes on (docs/performance.md, "Where a
default run's time goes").

The copy is the evaluation's alone: training moves the live weights, and the evaluation switches
its networks to eval mode. Evaluators draw from generators of their own and run without
gradients, so the thread touches nothing training reads (no global RNG, no autograd graph), and
the numbers are those of an evaluation on the training thread, bit for bit (tested). Most of
its time is spent in torch's kernels, which release the interpreter's lock: on a CPU whose run
leaves a core free (the toy default trains on one thread) it costs the steps nearly nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from ganopt.background import BackgroundTask

Scores = dict[str, float | None]


class BackgroundEvaluation(BackgroundTask[Scores]):
    """``evaluate(copy of sampler)`` for ``step``, started now on a thread; :meth:`result`
    waits for it and returns its scores or raises what it raised."""

    def __init__(
        self, step: int, evaluate: Callable[[nn.Module], Scores], sampler: nn.Module
    ) -> None:
        weights = copy.deepcopy(sampler).requires_grad_(False)
        super().__init__(step, "evaluation", evaluate, weights)
