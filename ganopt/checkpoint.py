"""Checkpoints written atomically: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganopt.rundir import write_atomic

LAST = "last.pt"
_PERIODIC = re.compile(r"step_(\d+)\.pt")


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save through :func:`ganopt.rundir.write_atomic`: whole or not at all."""
    write_atomic(path, lambda f: torch.save(state, f))


class CheckpointError(ValueError):
    """A file that is not a loadable ganopt checkpoint; the message says why, in one line."""


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only``): a file that
    would run code, is truncated, empty or not a checkpoint at all raises CheckpointError."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        code = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line), None)
        if code:  # a pickle that imports something: it would run code when loaded
            raise CheckpointError(f"{path}: refused, loading it would run code ({code})") from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt, or not written by torch.save)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, IndexError):
        raise CheckpointError(
            f"{path}: not a readable checkpoint (empty, truncated or corrupt)"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a checkpoint dict")
    return state


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
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            try:  # a hard link: no second copy; last.pt is later replaced, never rewritten
                os.link(self.last, tmp)
            except OSError:  # file systems without hard links
                write_atomic(target, lambda f: f.write(self.last.read_bytes()))
            else:
                os.replace(tmp, target)
            self._prune()

    def _prune(self) -> None:
        periodic = sorted(p for p in self.path.iterdir() if _PERIODIC.fullmatch(p.name))
        for old in periodic[: -self.keep]:
            old.unlink()
