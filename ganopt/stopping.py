"""Stopping a run cleanly on SIGINT/SIGTERM (docs/reliability.md, "How a run ends")."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("ganopt.trainer")

#: the signals that stop a run
RUN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Ctrl-C during the block raises KeyboardInterrupt when the block ends, not inside it: an
    import or a library (torch, Hydra, OmegaConf) interrupted half-way can leave a traceback
    from its own machinery where one line should be. Where Ctrl-C is ignored, or outside the
    main thread, nothing changes."""
    received: list[int] = []
    try:
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main thread
        previous = signal.SIG_IGN
    try:
        yield
    finally:
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


#: signals that arrived while the main thread held them, handled when it lets them go
_deferred: list[int] = []
_holding = 0  # the main thread's nested signals_held blocks


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, so that what it writes is written whole:
    a checkpoint and the metrics.json that records it. The calling thread blocks them; on the
    main thread the run's handler also defers them itself (:func:`deferred`), as the kernel
    may deliver a signal to any other thread that does not block it, and Python then runs the
    handler on the main thread all the same."""
    main = threading.current_thread() is threading.main_thread()
    global _holding
    masks = hasattr(signal, "pthread_sigmask")  # not on Windows
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, RUN_SIGNALS) if masks else None
    _holding += main
    try:
        yield
    finally:
        _holding -= main
        if masks:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if main and not _holding:
            pending, _deferred[:] = list(_deferred), []
            for signum in pending:  # handled now, in order
                signal.raise_signal(signum)


def deferred(signum: int) -> bool:
    """Whether the main thread holds signals now; if so ``signum`` is kept for the end of the
    block. For a handler to call first."""
    if _holding:
        _deferred.append(signum)
    return bool(_holding)


def start_worker(target: Callable[..., object], name: str, *args: object) -> threading.Thread:
    """A daemon thread running ``target(*args)`` that never receives SIGINT or SIGTERM: Python
    runs a signal's handler on the main thread, but the kernel delivers the signal to any
    thread that does not block it, and one delivered to a worker while the main thread holds
    signals (:func:`signals_held`) would run the handler inside the held block. A thread
    inherits the signal mask of the thread that starts it."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with signals_held():
        thread.start()
    return thread


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a run stops cleanly after
    the step in flight. A second Ctrl-C aborts at once (after a block that holds signals)."""

    SIGNALS = tuple(RUN_SIGNALS)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if deferred(signum):
            return
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("%s received: stopping after this step", signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: leave signals to whoever owns them
            self._previous = {}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
