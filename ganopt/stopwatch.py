"""Where a run's time goes, part by part: the seam through which ``scripts/bench.py
--breakdown`` times a run's steps, figures, evaluation, game spectrum and checkpoints. A run's
stopwatch is off unless a benchmark turns it on, and then it costs a clock read per part (and,
on CUDA, a synchronization, which a run does not otherwise make)."""

from __future__ import annotations

import contextlib
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch


class Stopwatch:
    """Seconds spent in each named part, call by call, while it runs."""

    def __init__(self, device: torch.device | None = None, running: bool = False) -> None:
        self.device, self.running = device, running
        self.spent: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        if not self.running:
            yield
            return
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.spent[part].append(time.perf_counter() - start)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """What is not training time: the final figures and evaluation."""
        running, self.running = self.running, False
        try:
            yield
        finally:
            self.running = running

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


Method = TypeVar("Method", bound=Callable[..., Any])


def timed(part: str) -> Callable[[Method], Method]:
    """A method of an object with a ``stopwatch``, timed as ``part``."""

    def wrap(method: Method) -> Method:
        @functools.wraps(method)
        def measured(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self.stopwatch(part):
                return method(self, *args, **kwargs)

        return measured  # type: ignore[return-value]

    return wrap
