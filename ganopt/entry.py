"""The console entry points. They import their modules with Ctrl-C held back, so that Ctrl-C
while they load ends the program with one line and exit code 130, not a traceback through the
import machinery (or through a library that was half-way through building a config when the
KeyboardInterrupt arrived); a Ctrl-C at any later moment of start-up ends it the same way."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


class _EndsWhenReaderGoes:
    """sys.stdout during a command: where the program reading it has gone (``python train.py
    --help | head``), the command ends quietly with exit code 1, as Python's documentation
    recommends for a closed pipe, instead of with a traceback (Hydra prints its help and the
    config itself, and reports what that raises with one). stdout then points at /dev/null, so
    that the interpreter's own flush at exit does not fail again. Training logs go to stderr."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guarded(self._stream.write, text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _guarded(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:
            if not _reader_gone(self._stream):
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            raise SystemExit(1) from None


def _reader_gone(stream: Any) -> bool:
    """Whether ``stream`` is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no file descriptor, or no poll here
        return False


@contextlib.contextmanager
def _stdout_guarded() -> Iterator[None]:
    """stdout guarded for the command, and flushed through the guard before it is put back:
    a pipe holds what is printed in its buffer, so a closed reader is often met only there. A
    closed stdout (>&-, None) is /dev/null meanwhile: Hydra's --cfg writes to it and failed."""
    stdout = sys.stdout
    with contextlib.ExitStack() as closing:
        if stdout is None:
            target = closing.enter_context(open(os.devnull, "w"))
        else:
            target = _EndsWhenReaderGoes(stdout)
        sys.stdout = target
        try:
            yield
        finally:
            try:
                target.flush()
            finally:
                sys.stdout = stdout


def _load_main(module: str) -> Callable[[], Any]:
    """``module.main``, imported while Ctrl-C waits (then KeyboardInterrupt, if it came)."""
    from ganopt.stopping import ctrl_c_held

    with ctrl_c_held():
        return importlib.import_module(module).main


def train() -> None:
    """A training command line in this process (``sys.argv``): a run or a sweep."""
    try:
        with _stdout_guarded():
            main = _load_main("ganopt.cli")
            main()
    except KeyboardInterrupt:
        _interrupted()


def train_and_exit() -> NoReturn:
    """``ganopt-train`` and ``python train.py``: :func:`train`, then, after a single run, the
    process ends at once. Everything the run writes is closed and synced when it returns (the
    run directory's files, TensorBoard's events, the log, once flushed here); what a normal
    exit adds is the interpreter taking torch apart, time spent for nothing
    (docs/performance.md, "Start-up"). A sweep exits normally: its launcher's workers are
    stopped by their own exit handlers."""
    try:
        train()
        code = 0
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    from ganopt.launch import single_run

    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if not single_run(sys.argv) or any(not t.daemon for t in others):
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # closed (>&-)
            continue
        with contextlib.suppress(BrokenPipeError):  # its reader has gone: the rest is dropped
            stream.flush()
    os._exit(code)


def sample() -> int:
    """``ganopt-sample``."""
    try:
        with _stdout_guarded():
            main = _load_main("ganopt.sample")
            return main()
    except KeyboardInterrupt:
        _interrupted()
