"""The console entry points. They import the heavy modules (torch, Hydra) with Ctrl-C held
back, so that Ctrl-C while they load ends the program with one line and exit code 130, not a
traceback through the import machinery (or through a library that was half-way through
building a config when the KeyboardInterrupt arrived)."""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Callable
from typing import Any


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def _load_main(module: str) -> Callable[[], Any]:
    """``module.main``, imported while SIGINT only sets a flag; then exit 130 if it came."""
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        main = importlib.import_module(module).main
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        _interrupted()
    return main


def train() -> None:
    """``ganopt-train`` and ``python train.py``."""
    _load_main("ganopt.cli")()


def sample() -> int:
    """``ganopt-sample``."""
    main = _load_main("ganopt.sample")
    try:
        return main()
    except KeyboardInterrupt:
        _interrupted()
