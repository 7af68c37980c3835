"""Stopping a run cleanly on SIGINT/SIGTERM (docs/reliability.md, "How a run ends")."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator

log = logging.getLogger("ganopt.trainer")


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


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, so that what it writes is written whole:
    a checkpoint and the metrics.json that records it."""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a run stops cleanly after
    the step in flight. A second Ctrl-C aborts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
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
