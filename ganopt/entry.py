"""The console entry points. They import their modules with Ctrl-C held back, so that Ctrl-C
while they load ends the program with one line and exit code 130, not a traceback through the
import machinery (or through a library that was half-way through building a config when the
KeyboardInterrupt arrived); a Ctrl-C at any later moment of start-up ends it the same way."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def _load_main(module: str) -> Callable[[], Any]:
    """``module.main``, imported while Ctrl-C waits (then KeyboardInterrupt, if it came)."""
    from ganopt.stopping import ctrl_c_held

    with ctrl_c_held():
        return importlib.import_module(module).main


def train() -> None:
    """A training command line in this process (``sys.argv``): a run or a sweep."""
    try:
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
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def sample() -> int:
    """``ganopt-sample``."""
    try:
        main = _load_main("ganopt.sample")
        return main()
    except KeyboardInterrupt:
        _interrupted()
