"""Checkpoints written atomically: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

LAST = "last.pt"
_PERIODIC = re.compile(r"step_(\d+)\.pt")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same directory, fsync it, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location=map_location, weights_only=True)


class CheckpointDir:
    """``checkpoints/last.pt`` plus the newest ``keep`` periodic ``step_NNNNNNN.pt`` files."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = Path(path)
        self.keep = keep

    @property
    def last(self) -> Path:
        return self.path / LAST

    def save(self, state: dict[str, Any], step: int, periodic: bool) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        save_atomic(state, self.last)
        if periodic and self.keep > 0:
            target = self.path / f"step_{step:07d}.pt"
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(self.last, tmp)
            os.replace(tmp, target)
            self._prune()

    def _prune(self) -> None:
        periodic = sorted(p for p in self.path.iterdir() if _PERIODIC.fullmatch(p.name))
        for old in periodic[: -self.keep]:
            old.unlink()
