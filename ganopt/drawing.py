"""Figures drawn off the training path. A figure costs a third of a second of matplotlib; the
training thread computes what it shows (host arrays, never live tensors, never the global RNG)
and hands that over, and a worker thread draws it and writes it to TensorBoard and the run
directory while training goes on. So the worker cannot change a run's bits. Its queue is
short, and a full queue makes the training thread wait, so memory stays bounded; the run waits
for it at each checkpoint, so that the files on disk match the checkpoint, and at the end. A
figure that fails is reported once, in the log and in TensorBoard's alerts, and the run goes
on without it (docs/performance.md, "Where a default run's time goes")."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("ganopt.trainer")

#: figures waiting to be drawn before the training thread waits (each holds host arrays)
QUEUE_SIZE = 2


class Alerts(Protocol):
    def text(self, tag: str, text: str, step: int) -> None: ...


class Drawing:
    """Runs figure jobs (callables over host copies that draw and write) in a worker thread,
    started on the first job and stopped by :meth:`close`; ``background=False`` runs each job
    at once on the caller's thread instead (the same outputs, for comparison)."""

    def __init__(self, alerts: Alerts, *, background: bool = True) -> None:
        self.alerts, self.background = alerts, background
        self.failed: set[str] = set()  # the figures that failed, each reported once
        self._jobs: queue.Queue[tuple[str, int, Callable[[], None]] | None] = queue.Queue(
            QUEUE_SIZE
        )
        self._thread: threading.Thread | None = None

    def submit(self, what: str, step: int, job: Callable[[], None]) -> None:
        """Draw and write ``what`` (of ``step``) by calling ``job``, in the worker; waits while
        the queue is full."""
        if not self.background:
            self._run(what, step, job)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="ganopt-figures", daemon=True)
            self._thread.start()
        self._jobs.put((what, step, job))

    def wait(self) -> None:
        """Until every figure submitted so far is drawn and written."""
        if self._thread is not None:
            self._jobs.join()

    def close(self) -> None:
        """Wait for the figures, then stop the worker (a later figure starts another)."""
        if self._thread is None:
            return
        self._jobs.put(None)
        self._thread.join()
        self._thread = None

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            try:
                self._run(*item)
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def _run(self, what: str, step: int, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as e:  # a figure is an output, not the run: the run goes on
            if what in self.failed:
                return
            self.failed.add(what)
            first = (str(e).strip().splitlines() or [""])[0][:200]
            message = f"figure {what} at step {step} failed, left out: {type(e).__name__}: {first}"
            log.warning(message)
            try:
                self.alerts.text("alerts", message, step)
            except Exception:  # TensorBoard itself failing: the log line has said it
                log.debug("the alert could not be written either", exc_info=True)
