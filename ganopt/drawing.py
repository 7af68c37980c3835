"""Figures drawn off the training path. The training thread hands over what a figure shows
(host arrays, or copies of the networks that the job alone uses; never live tensors, never the
global RNG); a worker thread computes the picture, has it drawn and writes it to TensorBoard
and the run directory while training goes on. So the worker cannot change a run's bits. While
training goes on the drawing itself (matplotlib, Python that holds the interpreter's lock)
happens in a process of its own, on another core, so that it does not slow the steps it
overlaps. It starts with the first figure drawn while training goes on, or, for train.py's
runs, with the run, loading matplotlib meanwhile, so that even a short run's last figures are
drawn there beside its evaluation.
The queue is short, and a full queue makes the training thread wait, so memory stays bounded;
the run waits for it at each checkpoint, so that the files on disk match the checkpoint, and
at the end. A figure that fails is reported once, in the log and in TensorBoard's alerts, and
the run goes on without it (docs/performance.md, "Where a default run's time goes")"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from ganopt.rendering import load_matplotlib
from ganopt.stopping import signals_held, start_worker

log = logging.getLogger("ganopt.trainer")

#: figures waiting to be drawn before the training thread waits (each holds host arrays)
QUEUE_SIZE = 2


Drawn = TypeVar("Drawn")


class Alerts(Protocol):
    def text(self, tag: str, text: str, step: int) -> None: ...


def _drawing_process(run: int) -> None:
    """The drawing process leaves Ctrl-C and SIGTERM, which reach a terminal's or a batch
    system's whole process group, to the run, which stops it when the run ends; and it ends by
    itself once the run is gone without stopping it (killed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == run:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="ganopt-run-watch", daemon=True).start()


def _spawn() -> ProcessPoolExecutor:
    """The drawing process: spawned, as a fork would copy torch's threads."""
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        1, mp_context=spawn, initializer=_drawing_process, initargs=(os.getpid(),)
    )


class Drawing:
    """Runs figure jobs (callables over host copies that draw, by :meth:`draw`, and write) in a
    worker thread, started on the first job and stopped by :meth:`close`; ``background=False``
    runs each job at once on the caller's thread instead (the same outputs, for comparison)."""

    def __init__(self, alerts: Alerts, *, background: bool = True) -> None:
        self.alerts, self.background = alerts, background
        self.beside_training = True  # in the background, drawings go to the drawing process
        self.failed: set[str] = set()  # the figures that failed, each reported once
        self._jobs: queue.Queue[tuple[str, int, Callable[[], None]] | None] = queue.Queue(
            QUEUE_SIZE
        )
        self._thread: threading.Thread | None = None
        self._process: ProcessPoolExecutor | None = None
        self._workers: list[multiprocessing.process.BaseProcess] = []  # the pool's process

    def draw(self, function: Callable[..., Drawn], *args: Any) -> Drawn:
        """``function(*args)``, one of ganopt/rendering.py's: in the drawing process, started
        on first use while training goes on (and still used once it is over, its matplotlib
        loaded); here where there is none once training is over. A job calls it."""
        if not self.background or (self._process is None and not self.beside_training):
            return function(*args)
        if self._process is None:
            self._start_process()
        try:
            return self._process.submit(function, *args).result()
        except BrokenProcessPool:
            log.warning("the drawing process ended; figures are drawn on a thread from here on")
            self._process, self.beside_training = None, False
            return function(*args)
        except (KeyboardInterrupt, SystemExit) as e:  # raised over there: a failed figure here
            raise RuntimeError(f"the drawing process was stopped ({type(e).__name__})") from None

    @property
    def elsewhere(self) -> bool:
        """Whether figures are drawn in the drawing process now (so that drawing them holds
        nothing here)."""
        return self.background and self._process is not None

    def start(self) -> None:
        """Start the drawing process now, and have it load matplotlib on a core of its own
        while the run starts and trains: the first figure, even a short run's last, is then
        drawn there at once, beside what the run does meanwhile."""
        if self.background and self._process is None:
            self._start_process()

    def _start_process(self) -> None:
        before = set(multiprocessing.active_children())
        with signals_held():  # the pool's managing thread never takes the run's signals
            self._process = _spawn()
            self._process.submit(load_matplotlib)
        self._workers = [p for p in multiprocessing.active_children() if p not in before]

    def training_over(self) -> None:
        """Training ends: no process is started for the last figures any more (one that
        ended, or a run that started none, draws them on the worker thread)."""
        self.beside_training = False

    def submit(self, what: str, step: int, job: Callable[[], None]) -> None:
        """Draw and write ``what`` (of ``step``) by calling ``job``, in the worker; waits while
        the queue is full."""
        if not self.background:
            self._run(what, step, job)
            return
        if self._thread is None:
            self._thread = start_worker(self._work, "ganopt-figures")
        self._jobs.put((what, step, job))

    def wait(self) -> None:
        """Until every figure submitted so far is drawn and written."""
        if self._thread is not None:
            self._jobs.join()

    def close(self) -> None:
        """Wait for the figures, then stop the worker and the drawing process (a later figure
        starts another worker and is drawn there: no process is started after this)."""
        self.beside_training = False
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        process, self._process = self._process, None
        try:
            if process is not None:
                with signals_held():  # never split by a Ctrl-C: its managing thread would die
                    process.shutdown(wait=False)
                for worker in self._workers:  # done with the figures queued: it ends
                    worker.join()
        finally:  # whatever state the pool was left in, its process ends: it ignores SIGTERM,
            # and the interpreter's exit would otherwise wait for it forever
            workers, self._workers = self._workers, []
            for worker in workers:
                if worker.is_alive():
                    worker.kill()
                    worker.join(timeout=5)

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
