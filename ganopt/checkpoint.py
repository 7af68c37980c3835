"""Checkpoints written atomically: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
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
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict[str, Any]:
    """Every random generator a run draws from: torch (CPU and each CUDA device), Python,
    NumPy. Stored as tensors and plain values, so ``weights_only`` loading accepts it."""
    kind, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002 -- global
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002 -- the legacy global RNG, as saved
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def find_checkpoint(path: str | Path) -> Path:
    """A run directory (→ its checkpoints/last.pt) or a checkpoint file."""
    path = Path(path).expanduser()
    candidate = path / "checkpoints" / LAST if path.is_dir() else path
    if not candidate.is_file():
        raise FileNotFoundError(f"no checkpoint at {candidate}")
    return candidate


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to: ``<run>/checkpoints/<file>``."""
    return checkpoint.resolve().parent.parent


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
            tmp.unlink(missing_ok=True)
            try:  # a hard link: no second copy; last.pt is later replaced, never rewritten
                os.link(self.last, tmp)
            except OSError:  # file systems without hard links
                shutil.copyfile(self.last, tmp)
            os.replace(tmp, target)
            self._prune()

    def _prune(self) -> None:
        periodic = sorted(p for p in self.path.iterdir() if _PERIODIC.fullmatch(p.name))
        for old in periodic[: -self.keep]:
            old.unlink()
