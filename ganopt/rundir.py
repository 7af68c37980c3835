"""A run directory's rules: one process writes it at a time, and every file in it is written
whole or not at all (README, "How a run ends" and "Reliability")."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ganopt.config import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
#: the locks this process holds: run directory → open lock file
_held: dict[Path, IO[str]] = {}


class WriteError(OSError):
    """A file of the run could not be written (disk full, permissions); one line says which."""


def lock(run_dir: Path) -> None:
    """Hold ``run_dir`` for this process until :func:`release` (or exit): a second run or a
    ``resume=`` of a run still in progress is refused, naming the holder's PID."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 -- held open for the run's life
    except OSError as e:
        raise ConfigError([f"cannot create or write {run_dir}: {e.strerror}"]) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            [
                f"{run_dir} is in use by process {holder} (a run is writing to it); wait for it to "
                f"end or choose another directory"
            ]
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[run_dir] = handle


def release(run_dir: Path) -> None:
    handle = _held.pop(Path(run_dir).resolve(), None)
    if handle is not None:
        handle.close()  # closing the file releases the flock


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a uniquely named temporary file beside ``path``, fsync, rename: a reader,
    a crash or a second writer never sees half a file. On failure the temporary file is gone,
    ``path`` is as it was, and WriteError says why in one line."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError(_why(e, path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise WriteError(_why(e, path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _why(error: BaseException, path: Path) -> str:
    """torch.save reports a full disk as RuntimeError('unexpected pos'), the OSError behind it."""
    for e in (error, error.__context__, error.__cause__):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return f"no space left on device while writing {path}"
        if isinstance(e, OSError) and e.strerror:
            return f"cannot write {path}: {e.strerror}"
    return f"cannot write {path}: {' '.join(str(error).split())[:160]}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_empty_parents(path: Path) -> None:
    """The folders above a removed run directory that are now empty (Hydra's outputs/DATE/),
    up to the working directory, which stays."""
    cwd = Path.cwd().resolve()
    for parent in path.resolve().parents:
        if parent == cwd or cwd not in parent.parents:
            return
        try:
            parent.rmdir()  # only an empty folder goes
        except OSError:
            return


def remove_rejected(run_dir: Path, hydra_subdir: Path | None) -> None:
    """A config refused before training leaves nothing behind. A run directory holding nothing
    but what Hydra made for this run (.hydra/, train.log) goes; in a directory that holds more
    (a resumed run), only this attempt's own .hydra/resumed_* record goes."""
    run_dir = Path(run_dir)
    for handler in logging.getLogger().handlers[:]:  # train.log is open in Hydra's handler
        if (
            isinstance(handler, logging.FileHandler)
            and Path(handler.baseFilename).parent == run_dir
        ):
            handler.close()
            logging.getLogger().removeHandler(handler)
    release(run_dir)
    if not run_dir.is_dir():
        return
    if {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", LOCK_FILE}:
        shutil.rmtree(run_dir, ignore_errors=True)
        _remove_empty_parents(run_dir)
    elif hydra_subdir is not None and hydra_subdir.name.startswith("resumed_"):
        shutil.rmtree(hydra_subdir, ignore_errors=True)
