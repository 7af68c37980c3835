"""The console entry points. They import their modules with Ctrl-C held back, so that Ctrl-C
while they load ends the program with one line and exit code 130, not a traceback through the
import machinery (or through a library that was half-way through building a config when the
KeyboardInterrupt arrived); a Ctrl-C at any later moment of start-up ends it the same way."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def _load_main(module: str) -> Callable[[], Any]:
    """``module.main``, imported while Ctrl-C waits (then KeyboardInterrupt, if it came)."""
    from ganopt.stopping import ctrl_c_held

    with ctrl_c_held():
        return importlib.import_module(module).main


def train() -> None:
    """``ganopt-train`` and ``python train.py``."""
    try:
        main = _load_main("ganopt.cli")
        main()
    except KeyboardInterrupt:
        _interrupted()


def sample() -> int:
    """``ganopt-sample``."""
    try:
        main = _load_main("ganopt.sample")
        return main()
    except KeyboardInterrupt:
        _interrupted()
