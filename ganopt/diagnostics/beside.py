"""Log-step measurements beside training: those that need no live graph run on a thread of
their own, over replicas of the networks, while the training thread goes on (docs/performance.md,
"Where a default run's time goes").

A replica is refreshed from its network (weights and buffers, copied in place) at the moment
the measurement would have read the network, and is the measurement's alone until it is done.
A job reads only tensors handed to it (replicas, copies of the batch, detached values), draws
no random numbers and writes nothing but its result, so the thread cannot change what training
does; where it builds a graph, it builds all of it on its own thread, so that autograd adds
gradients up in the order it would on the training thread (tested: the same bits). It pays off
on a CPU whose run leaves a core free (the toy default trains on one thread); elsewhere the
measurements run inline, as before.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ganopt.stopping import start_worker

Values = dict[str, Tensor]


class Replica:
    """A copy of ``live`` for measurements beside training, made on first use and afterwards
    refreshed in place."""

    def __init__(self, live: nn.Module, worker: BesideWorker) -> None:
        self.live, self.worker = live, worker
        self.module: nn.Module | None = None
        self._last_job = 0  # the latest job that reads the replica

    def refresh(self) -> nn.Module:
        """The replica, now equal to ``live`` (once the jobs that read it are done), in its
        mode and with its parameters' requires_grad."""
        self.worker.wait(self._last_job)
        live = self.live
        if self.module is None:
            self.module = copy.deepcopy(live)
            for p in self.module.parameters():
                p.grad = None
        else:
            mine = [*self.module.parameters(), *self.module.buffers()]
            with torch.no_grad():
                torch._foreach_copy_(mine, [*live.parameters(), *live.buffers()])
            for p, q in zip(self.module.parameters(), live.parameters(), strict=True):
                p.requires_grad_(q.requires_grad)
        self.module.train(live.training)
        return self.module

    def read_by(self, job: int) -> None:
        self._last_job = job


class BesideWorker:
    """Runs measurement jobs (callables that return 0-d tensors by tag) one after another on
    a thread of its own, started on the first job; :meth:`ready` hands their values back to
    the training thread, a step's together once all its jobs are done, and raises there what a
    job raised."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[int, int, Callable[[], Values]] | None] = (
            queue.SimpleQueue()
        )
        self._done = threading.Condition()
        self._submitted = self._finished = 0
        self._open: dict[int, int] = {}  # step: its jobs not done yet
        self._values: dict[int, Values] = {}  # step: what its jobs measured so far
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, step: int, job: Callable[[], Values]) -> int:
        """Run ``job`` (measuring ``step``) beside training; its number, for :meth:`wait`."""
        if self._thread is None:
            self._thread = start_worker(self._work, "ganopt-measure")
        with self._done:
            self._submitted += 1
            self._open[step] = self._open.get(step, 0) + 1
            self._values.setdefault(step, {})
        self._jobs.put((self._submitted, step, job))
        return self._submitted

    def measures(self, step: int) -> bool:
        """Whether values of ``step`` are still to come from :meth:`ready`."""
        with self._done:
            return step in self._values

    def wait(self, job: int | None = None) -> None:
        """Until job number ``job`` (every job submitted so far: None) is done."""
        until = self._submitted if job is None else job
        with self._done:
            self._done.wait_for(lambda: self._finished >= until)

    def ready(self, wait: bool = False) -> list[tuple[int, Values]]:
        """(step, values) of every step whose jobs are all done (all steps: ``wait``), in step
        order, each handed back once."""
        if wait:
            self.wait()
        with self._done:
            error, self._error = self._error, None
            if error is not None:  # the other steps' values stay for the run's end
                raise error
            steps = sorted(step for step in self._values if not self._open[step])
            for step in steps:
                del self._open[step]
            return [(step, self._values.pop(step)) for step in steps]

    def close(self) -> None:
        """Wait for the jobs, then stop the thread (a later job starts another)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            number, step, job = item
            item = None  # the job's replicas and tensors are not held while the thread waits
            try:
                values, error = job(), None
            except BaseException as e:  # raised on the training thread, by ready()
                values, error = {}, e
            job = None
            with self._done:
                self._values[step] |= values
                self._open[step] -= 1
                if error is not None and self._error is None:
                    self._error = error
                self._finished = number
                self._done.notify_all()
