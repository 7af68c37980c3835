"""What the command-line tools (scripts/, ganopt-sample) share: argument types, and their
output directory, refused in one line where it cannot be made (docs/reliability.md)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ganopt.rundir import WriteError, run_above, write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def integers(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]; anything else is argparse's usage error."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None


def output_dir(path: Path, in_run: bool = False) -> Path:
    """A tool's output directory, made with its parents. Raises WriteError (one line) where
    it cannot be made or written (a file in the way, no permission), or where it lies inside a
    run directory, unless the tool writes there by design (``in_run``: path_angle.py's)."""
    if not in_run and (run := run_above(path)) is not None:
        raise WriteError(f"cannot write into {path}: it lies inside the run directory {run}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot create {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write into {path}: permission denied")
    return path


@contextlib.contextmanager
def written(path: Path) -> Iterator[io.StringIO]:
    """A text file (a CSV, a table) written whole when the block ends, never through a
    symlink: the output folder's files follow the run directory's rules (ganopt/rundir.py)."""
    text = io.StringIO(newline="")
    yield text
    write_atomic(Path(path), lambda f: f.write(text.getvalue().encode()))


def save_figure(figure: Figure, path: Path, dpi: int = 100) -> None:
    """A PNG written the same way."""
    write_atomic(Path(path), lambda f: figure.savefig(f, format="png", dpi=dpi))
