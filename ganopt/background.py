"""One piece of work beside training: a function of copies taken on the training thread, run
on a thread of its own while training goes on, its result read back on the training thread
(docs/performance.md, "Where a default run's time goes"). The work reads only what it is handed
(copies of the networks, tensors nothing else writes) and draws no random number from the
global generator, so the thread cannot change what training does. Evaluation
(ganopt/evaluation/background.py) and the game's spectrum (ganopt/diagnostics/game.py) run so
on a CPU run with a core to spare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ganopt.stopping import start_worker

Result = TypeVar("Result")


class BackgroundTask(Generic[Result]):
    """``work(*args)`` for ``step``, started now on a thread named ``name``; :meth:`result`
    waits for it and returns what it returned or raises what it raised."""

    def __init__(self, step: int, name: str, work: Callable[..., Result], *args: object) -> None:
        self.step = step
        self._result: Result | None = None
        self._error: BaseException | None = None
        self._thread = start_worker(self._run, f"ganopt-{name}-{step}", work, *args)

    def _run(self, work: Callable[..., Result], *args: object) -> None:
        try:
            self._result = work(*args)
        except BaseException as e:  # raised again on the training thread, by result()
            self._error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        """Until the work ends, its result left unread."""
        self._thread.join()

    def result(self) -> Result:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result
