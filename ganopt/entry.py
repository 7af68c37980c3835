"""The console entry points. They import the heavy modules (torch, Hydra) inside a guard, so
that Ctrl-C while they load ends the program with one line and exit code 130, not a
traceback through the import machinery."""

from __future__ import annotations

import sys


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def train() -> None:
    """``ganopt-train`` and ``python train.py``."""
    try:
        from ganopt.cli import main
    except KeyboardInterrupt:
        _interrupted()
    main()


def sample() -> int:
    """``ganopt-sample``."""
    try:
        from ganopt.sample import main
    except KeyboardInterrupt:
        _interrupted()
    try:
        return main()
    except KeyboardInterrupt:
        _interrupted()
