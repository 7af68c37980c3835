"""What the command-line tools (scripts/, ganopt-sample) share: argument types, and their
output directory, refused in one line where it cannot be made (docs/reliability.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ganopt.rundir import WriteError


def integers(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]; anything else is argparse's usage error."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None


def output_dir(path: Path) -> Path:
    """A tool's output directory, made with its parents. Raises WriteError (one line) where
    it cannot be made or written: a file in the way, no permission."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot create {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write into {path}: permission denied")
    return path
