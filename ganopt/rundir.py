"""A run directory's rules: one process writes it at a time, and every file in it is written
whole or not at all (docs/reliability.md, "How a run ends" and "Reliability")."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ganopt.config import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
#: the checkpoint a run's checkpoints/ folder always holds, its latest
LAST = "last.pt"
#: the locks this process holds: run directory → open lock file
_held: dict[Path, IO[str]] = {}
#: the folders this process made for its run directories: only these may a rejection remove
_made: set[Path] = set()


def _make(folder: Path) -> None:
    """``folder`` and its missing parents, each remembered as made here."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    _made.update(p.resolve() for p in missing)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: the process's umask, read once at import (reading it means setting it)
_UMASK = _umask()


class WriteError(OSError):
    """A file of the run could not be written (disk full, permissions); one line says which."""


def lock(run_dir: Path) -> None:
    """Hold ``run_dir`` for this process until :func:`release` (or exit): a second run or a
    ``resume=`` of a run still in progress is refused, naming the holder's PID. The lock file is
    opened without following a symlink; what this call created is removed if it fails (a full
    disk leaves no empty folder behind). Leftover temporary files of a killed run go."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    created = not run_dir.exists()
    try:
        _make(run_dir)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        _undo(run_dir, created)
        raise ConfigError([f"cannot create or write {run_dir}: {_reason(e)}"]) from None
    handle = os.fdopen(fd, "r+")
    if os.fstat(fd).st_nlink != 1 or not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()  # a hard link: writing the PID would overwrite a file elsewhere
        raise ConfigError([f"{run_dir / LOCK_FILE} is linked to another file; refused"])
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            [
                f"{run_dir} is in use by process {holder} (a run is writing to it); wait for it to "
                f"end or choose another directory"
            ]
        ) from None
    try:
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    except OSError as e:
        handle.close()
        _undo(run_dir, created)
        raise ConfigError([f"cannot create or write {run_dir}: {_reason(e)}"]) from None
    _held[run_dir] = handle
    _remove_leftover_temporaries(run_dir)


def _reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return f"{LOCK_FILE} is a symlink"
    return error.strerror or str(error)


def _undo(run_dir: Path, created: bool) -> None:
    """Remove what a failed :func:`lock` made: the lock file and, if it made it, the folder."""
    if created:
        with contextlib.suppress(OSError):
            (run_dir / LOCK_FILE).unlink()
        with contextlib.suppress(OSError):
            run_dir.rmdir()


#: the temporary files write_atomic makes (".NAME.RANDOM.tmp"), which a kill -9 can leave
_TEMPORARY = re.compile(r"\..+\.tmp")


def _remove_leftover_temporaries(run_dir: Path) -> None:
    """A run killed while writing leaves ``.last.pt.*.tmp`` and the like; the lock says no
    writer is left, so the regular files of that pattern in the run directory and its
    checkpoints/ go."""
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if _TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


#: files written in place rather than replaced by a rename: a hard link among them would carry
#: the write to a file outside the run directory
WRITTEN_IN_PLACE = (LOCK_FILE, ".log")


def check_run_dir(run_dir: Path) -> None:
    """A run directory ganopt may write into: every entry in it is a regular file or a folder,
    none a symlink (which a write or a deletion would follow out of it) or a special file, and
    no file written in place (the lock, the log) a hard link. Raises ConfigError naming the
    first one found."""
    run_dir = Path(run_dir)
    for root, dirs, files in os.walk(run_dir):
        for name in sorted(dirs + files):
            path = Path(root) / name
            info = path.lstat()
            if name.endswith(WRITTEN_IN_PLACE) and info.st_nlink > 1:
                raise ConfigError([f"{path} is linked to another file; refused"])
            mode = info.st_mode
            if stat.S_ISLNK(mode):
                raise ConfigError(
                    [f"{path} is a symlink; a run directory holds only its own files, refused"]
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ConfigError(
                    [f"{path} is not a regular file; a run directory holds only its own files"]
                )


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has anything in it beyond a lock: a run that another must not
    overwrite."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())


def run_above(path: Path) -> Path | None:
    """The run directory ``path`` would lie inside (a folder with .hydra/overrides.yaml), if
    any: a new run or a table there would write into another run."""
    for folder in Path(path).resolve().parents:
        if (folder / ".hydra" / "overrides.yaml").is_file():
            return folder
    return None


def unused_run_dir(base: Path) -> Path:
    """The name :func:`new_run_dir` would make now, without making it."""
    base = Path(base)
    for n in range(1000):
        candidate = base if n == 0 else base.with_name(f"{base.name}-{n}")
        if not os.path.lexists(candidate):
            return candidate
    raise ConfigError([f"cannot create a new run directory beside {base}: 1000 exist"])


def new_run_dir(base: Path) -> Path:
    """``base``, or ``base-1``, ``base-2``... : the first that does not exist, made now, so that
    two runs started in the same second never share one."""
    base = Path(base)
    for n in range(1000):
        candidate = base if n == 0 else base.with_name(f"{base.name}-{n}")
        try:
            _make(candidate.parent)
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise ConfigError([f"cannot create {candidate}: {e.strerror or e}"]) from None
        _made.add(candidate.resolve())
        return candidate
    raise ConfigError([f"cannot create a new run directory beside {base}: 1000 exist"])


def release(run_dir: Path) -> None:
    handle = _held.pop(Path(run_dir).resolve(), None)
    if handle is not None:
        handle.close()  # closing the file releases the flock


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a uniquely named temporary file beside ``path``, fsync, rename: a reader,
    a crash or a second writer never sees half a file. On failure the temporary file is gone,
    ``path`` is as it was, and WriteError says why in one line."""
    with staged(path, write) as tmp:
        os.replace(tmp, path)


@contextlib.contextmanager
def staged(path: Path, write: Callable[[IO[bytes]], None]) -> Iterator[Path]:
    """A temporary file beside ``path``, written whole and fsynced, for the caller to rename
    into place (after what must come first: a checkpoint's digest). It never follows a symlink:
    the folder must not be one, and the rename replaces a link rather than its target. On any
    failure it is removed and WriteError names ``path``."""
    path = Path(path)
    if path.parent.is_symlink():  # check_run_dir refuses these; one made since is refused too
        raise WriteError(f"cannot write {path}: {path.parent} is a symlink")
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError(write_failure(e, path)) from None
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; the run's files share one mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        yield tmp
    except (OSError, RuntimeError) as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, WriteError):
            raise
        raise WriteError(write_failure(e, path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_failure(error: BaseException, path: Path) -> str:
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


def _remove_made_parents(path: Path) -> None:
    """The folders above a removed run directory that this process made and that are now
    empty (Hydra's outputs/DATE/); a folder that was there before stays."""
    for parent in path.resolve().parents:
        if parent not in _made:
            return
        try:
            parent.rmdir()  # only an empty folder goes
        except OSError:
            return


def remove_rejected(run_dir: Path, hydra_subdir: Path | None) -> None:
    """A config refused before training leaves nothing behind. A run directory this process
    made, holding nothing but what Hydra made for this run (.hydra/, train.log), goes; of one
    that was there before, only what the run wrote: Hydra's record of this attempt."""
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
    entries = list(run_dir.iterdir())
    if {p.name for p in entries} <= {".hydra", "train.log", LOCK_FILE}:
        if run_dir.resolve() in _made:
            shutil.rmtree(run_dir, ignore_errors=True)
            _remove_made_parents(run_dir)
            return
        for entry in entries:  # the folder was there before this run: it stays
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
    elif hydra_subdir is not None and hydra_subdir.resolve() in _made:  # this resume's record
        shutil.rmtree(hydra_subdir, ignore_errors=True)
