"""Checkpoints written atomically and verified before they are loaded.

Each checkpoint ``X.pt`` has a digest beside it, ``X.pt.sha256``, in ``sha256sum``'s format
(``sha256sum -c last.pt.sha256`` checks it by hand). torch does not check the CRCs of its zip
files, so a flipped bit in a stored tensor would otherwise load silently; a checkpoint whose
bytes do not match its digest, or that has none, is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import random
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganopt.rundir import LAST, WriteError, staged, write_atomic, write_failure
from ganopt.stopwatch import Stopwatch, timed

DIGEST_SUFFIX = ".sha256"
_PERIODIC = re.compile(r"step_(\d+)\.pt")
_DIGEST_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


def digest_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + DIGEST_SUFFIX)


def _write_digests(path: Path, digests: list[str]) -> None:
    text = "".join(f"{d}  {Path(path).name}\n" for d in dict.fromkeys(digests))
    write_atomic(digest_path(path), lambda f: f.write(text.encode()))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _recorded_digests(path: Path) -> list[str]:
    try:
        lines = digest_path(path).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    matches = [_DIGEST_LINE.fullmatch(line.strip()) for line in lines]
    return [m.group(1) for m in matches if m and m.group(2) == Path(path).name]


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """torch.save, whole or not at all, with its digest: the new file is written beside
    ``path`` and hashed, the digest file lists both the new and the current digest, the file
    is renamed into place, then the digest file lists the new one only. A crash at any point
    leaves a file that matches its digest file."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
    except (OSError, RuntimeError) as e:
        raise WriteError(write_failure(e, path)) from None
    data = buffer.getvalue()
    digest = _sha256(data)
    current = _recorded_digests(path) if path.exists() else []
    with staged(path, lambda f: f.write(data)) as tmp:
        _write_digests(path, [digest, *current])
        os.replace(tmp, path)
    _write_digests(path, [digest])


class CheckpointError(ValueError):
    """A file that is not a loadable ganopt checkpoint; the message says why, in one line."""


def verified_bytes(path: str | Path) -> bytes:
    """A checkpoint's bytes, read once, after checking them against its digest file. Raises
    CheckpointError for a file without a digest or whose bytes do not match it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    recorded = _recorded_digests(path)
    if not recorded:
        raise CheckpointError(
            f"{path}: no digest ({digest_path(path).name}) to verify it against, so it is not "
            f"loaded; ganopt writes one beside every checkpoint"
        )
    if _sha256(data) not in recorded:
        raise CheckpointError(
            f"{path}: its bytes do not match its digest ({digest_path(path).name}): the file is "
            f"corrupt or was altered; refused"
        )
    return data


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint, verified against its digest, without unpickling arbitrary objects
    (``weights_only``): a file that fails its digest, would run code, is truncated, empty or
    not a checkpoint at all raises CheckpointError."""
    data = verified_bytes(path)
    try:
        with warnings.catch_warnings():  # an odd pickle protocol in a corrupt file warns
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        code = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line), None)
        if code:  # a pickle that imports something: it would run code when loaded
            raise CheckpointError(f"{path}: refused, loading it would run code ({code})") from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt, or not written by torch.save)"
        ) from None
    except Exception as e:  # weights_only runs no code: whatever else a parse raises, the bytes did
        if isinstance(e, MemoryError) or "can't allocate memory" in str(e):  # or a size they claim
            raise CheckpointError(f"{path}: not enough memory to load it") from None
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
    """``checkpoints/last.pt`` plus the newest ``keep`` periodic ``step_NNNNNNN.pt`` files, each
    with its digest. The folder must be the run directory's own (not a symlink); pruning
    removes only the regular files of those names in it."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = Path(path)
        self.keep = keep

    @property
    def last(self) -> Path:
        return self.path / LAST

    def save(self, state: dict[str, Any], step: int, periodic: bool) -> None:
        if self.path.is_symlink():
            raise WriteError(f"{self.path} is a symlink; checkpoints stay in the run directory")
        self.path.mkdir(parents=True, exist_ok=True)
        save_atomic(state, self.last)
        if periodic and self.keep > 0:
            target = self.path / f"step_{step:07d}.pt"
            _write_digests(target, _recorded_digests(self.last))
            tmp = Path(tempfile.mktemp(dir=self.path, prefix=f".{target.name}.", suffix=".tmp"))
            try:  # a hard link: no second copy; last.pt is later replaced, never rewritten
                os.link(self.last, tmp)
            except OSError:  # file systems without hard links
                write_atomic(target, lambda f: f.write(self.last.read_bytes()))
            else:
                os.replace(tmp, target)
            self._prune()

    def _prune(self) -> None:
        periodic = sorted(
            entry.name
            for entry in os.scandir(self.path)
            if _PERIODIC.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
        )
        for name in periodic[: -self.keep]:
            for old in (self.path / name, digest_path(self.path / name)):
                with contextlib.suppress(FileNotFoundError):
                    if old.is_file() and not old.is_symlink():
                        old.unlink()


class Checkpointer:
    """When a run saves (every trainer.ckpt_every steps, at the end, on a signal) and what: the
    run's state, unless a weight or an optimizer statistic is not finite, in which case nothing
    is written and the run diverged. Only the main rank writes; every rank decides alike."""

    def __init__(self, path: Path, every: int, keep: int, last_step: int, main: bool) -> None:
        self.files = CheckpointDir(path, keep)
        self.every, self.last_step, self.main = every, last_step, main
        self.saved_step: int | None = None  # of the newest checkpoint on disk
        self.stopwatch = Stopwatch()  # off: scripts/bench.py --breakdown times the saves

    def resumed_at(self, step: int) -> None:
        """A run resumed at ``step`` started from that step's checkpoint: the newest one."""
        if step > 0:
            self.saved_step = step

    def periodic(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def due(self, step: int) -> bool:
        return step == self.last_step or self.periodic(step)

    @timed("checkpoints (trainer.ckpt_every)")
    def save(self, state: dict[str, Any], step: int) -> str | None:
        """Write ``state`` as the checkpoint of ``step``; the name of a network whose state is
        not finite instead (nothing written)."""
        bad = non_finite_network(state)
        if bad is not None:
            return bad
        if self.main:
            self.files.save(state, step, periodic=self.periodic(step))
        self.saved_step = step
        return None


def non_finite_network(state: dict[str, object]) -> str | None:
    """ "G" or "D" when one of that network's weights or optimizer statistics is NaN or
    infinite (Adam's exp_avg_sq can overflow while the losses still look fine), else None."""
    for network, keys in (("G", ("G", "opt_G", "G_ema")), ("D", ("D", "opt_D"))):
        tensors = [t for key in keys if key in state for t in _tensors(state[key])]
        finite: dict[torch.device, list[Tensor]] = {}  # Adam's step counts stay on the CPU
        for t in tensors:
            if t.is_floating_point():
                finite.setdefault(t.device, []).append(torch.isfinite(t).all())
        if not all(torch.stack(flags).all() for flags in finite.values()):
            return network
    return None


def _tensors(tree: object) -> list[Tensor]:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _tensors(v)]
    if isinstance(tree, (list, tuple)):
        return [t for v in tree for t in _tensors(v)]
    return []
