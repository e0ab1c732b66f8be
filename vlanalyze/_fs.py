"""The one home for writing files safely: atomic files, atomic folders, "must be empty".

Every file vlanalyze writes goes through here, so that the rules hold everywhere:

* a file appears complete or not at all: it is written under a hidden temporary name
  beside its target and renamed onto it (same folder, so the rename is atomic);
* an existing file or non-empty folder is replaced only when the caller says
  ``overwrite``; otherwise :class:`~vlanalyze.errors.MaterializeError` names it;
* a failed or interrupted write removes its temporary file or folder, and nothing else;
* new files and folders take the process's umask, as ``cp`` and ``duckdb`` do.

This module raises :class:`~vlanalyze.errors.MaterializeError` for "exists" and lets
:class:`OSError` through: callers translate it into their own layer's error. It never
prints.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vlanalyze.errors import Fix, MaterializeError

__all__ = [
    "MAX_NAME_BYTES",
    "OVERWRITE",
    "TEMP_NAME_OVERHEAD",
    "TEMP_PREFIX",
    "ProgressCallback",
    "atomic_file",
    "atomic_path",
    "clean_stale_temps",
    "ensure_absent",
    "ensure_empty_folder",
    "lock_fd",
    "make_temp_folder",
    "replace_folder",
    "temp_sibling",
    "write_bytes_atomic",
    "write_text_atomic",
]

ProgressCallback = Callable[[int, "int | None"], None]
"""``on_progress(done, total)``: units done so far, and the total (None when unknown)."""

OVERWRITE = Fix("overwrite", "to replace it")
"""The hint of every "already exists" error: the CLI spells it ``--overwrite``."""

STALE_SECONDS = 15 * 60
"""A temporary file unlocked and untouched for this long was left by a killed run."""

TEMP_PREFIX = ".vla-tmp-"
"""Every temporary file or folder written here starts with ``.<target name>`` then this."""


_TOKEN_BYTES = 6  # the random part of a temporary name: 12 hex digits

TEMP_NAME_OVERHEAD = len(f".{TEMP_PREFIX}part-") + 2 * _TOKEN_BYTES
"""How many bytes a file's temporary name (``.<name>.vla-tmp-part-<hex>``) adds."""

MAX_NAME_BYTES = 255 - TEMP_NAME_OVERHEAD
"""The longest name (UTF-8 bytes) of a file or folder vlanalyze writes in an output
folder: each file is written under its temporary name first, and most filesystems
(ext4, APFS, NTFS) hold names of at most 255 bytes or characters."""


def temp_sibling(target: Path, tag: str = "part") -> Path:
    """A fresh hidden name beside ``target``: ``.<name>.vla-tmp-<tag>-<random>``."""
    token = secrets.token_hex(_TOKEN_BYTES)
    return target.parent / f".{target.name}{TEMP_PREFIX}{tag}-{token}"


def ensure_absent(target: Path, *, overwrite: bool) -> None:
    """Raise unless ``target`` is absent, or may be replaced (``overwrite``)."""
    if os.path.lexists(target) and not overwrite:
        raise MaterializeError(f"{target} already exists", fix=OVERWRITE)
    if target.is_dir() and not target.is_symlink():
        raise MaterializeError(f"{target} is a folder", hint="name a file, not a folder")


def _create_exclusive(path: Path) -> int:
    # Mode 0o666 filtered by the umask (not mkstemp's 0o600): outputs are shared files.
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


@contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, overwrite: bool = False, clean: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    For writers that take a path (DuckDB ``COPY``, pyarrow). The temporary file is
    removed if the block raises (Ctrl-C included) or leaves nothing there. ``clean``:
    first remove stale temporary files of ``target`` (see :func:`clean_stale_temps`),
    which lists its folder; False when the caller did so already.
    """
    dest = Path(target)
    ensure_absent(dest, overwrite=overwrite)
    if clean:
        clean_stale_temps(dest)
    tmp = temp_sibling(dest)
    fd = _create_exclusive(tmp)
    try:
        lock_fd(fd)  # "in use": see clean_stale_temps
        yield tmp
        if not overwrite and os.path.lexists(dest):
            # Someone else created it meanwhile: theirs stays, ours goes.
            raise MaterializeError(f"{dest} already exists", fix=OVERWRITE)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


if sys.platform == "win32":  # no flock: never claim a lock, so nothing is cleaned

    def lock_fd(fd: int, *, shared: bool = False, wait: bool = True) -> bool:
        """Lock the open file ``fd`` (advisory, released when closed); False if busy."""
        return wait

else:
    import fcntl

    def lock_fd(fd: int, *, shared: bool = False, wait: bool = True) -> bool:
        """Lock the open file ``fd`` (advisory, released when closed); False if busy."""
        op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            return False
        return True


def clean_stale_temps(
    target: Path, *, older_than: float = STALE_SECONDS, siblings: Sequence[str] = ()
) -> list[Path]:
    """Remove temporary files of ``target`` (and of the files named ``siblings`` in its
    folder: one listing for all) left by killed runs; return what was removed.

    A temporary file is stale when it is older than ``older_than`` seconds and no process
    holds its lock (:func:`atomic_path` holds one while it writes): another process's
    file being written is never touched.
    """
    removed: list[Path] = []
    prefixes = tuple(f".{name}{TEMP_PREFIX}" for name in (target.name, *siblings))
    try:
        entries = [e for e in os.scandir(target.parent or ".") if e.name.startswith(prefixes)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        path = Path(entry.path)
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                continue
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if not lock_fd(fd, wait=False):
                continue
            path.unlink()
            removed.append(path)
        except OSError:
            pass  # in use by a live process, or already gone
        finally:
            os.close(fd)
    return removed


@contextmanager
def atomic_file(
    target: str | os.PathLike[str], *, overwrite: bool = False, clean: bool = True
) -> Iterator[BinaryIO]:
    """Yield a binary file open on a temporary name; rename it onto ``target`` on success."""
    with atomic_path(target, overwrite=overwrite, clean=clean) as tmp, tmp.open("wb") as fh:
        yield fh
        fh.flush()


def write_bytes_atomic(
    target: str | os.PathLike[str], data: bytes, *, overwrite: bool, clean: bool = True
) -> None:
    """Write ``data`` to ``target`` atomically (``clean``: as :func:`atomic_path`)."""
    with atomic_file(target, overwrite=overwrite, clean=clean) as fh:
        fh.write(data)


def write_text_atomic(target: str | os.PathLike[str], text: str, *, overwrite: bool) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"), overwrite=overwrite)


def ensure_empty_folder(dest: Path, *, overwrite: bool) -> bool:
    """True when ``dest`` is absent or an empty folder; False when it may be replaced.

    Raises:
        MaterializeError: ``dest`` is not a folder, or is not empty and not ``overwrite``.
    """
    if not os.path.lexists(dest):
        return True
    if dest.is_symlink() or not dest.is_dir():
        raise MaterializeError(f"{dest} exists and is not a folder", hint="choose another folder")
    with os.scandir(dest) as entries:
        if next(entries, None) is None:
            return True
    if not overwrite:
        raise MaterializeError(f"{dest} is not empty", fix=OVERWRITE)
    return False


def make_temp_folder(dest: Path, tag: str = "building") -> Path:
    """Create a fresh hidden folder beside ``dest`` (umask mode), to build ``dest`` in."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(dest, tag)
    tmp.mkdir()
    return tmp


def replace_folder(new: Path, dest: Path, *, overwrite: bool) -> None:
    """Put the complete folder ``new`` at ``dest``; an old ``dest`` is removed only after.

    ``dest`` is checked again here (it may have changed while ``new`` was built). If the
    rename fails, the old ``dest`` is put back.

    Raises:
        MaterializeError: ``dest`` is not empty and not ``overwrite``; or the old content
            could not be removed after the new one was put in place.
    """
    if ensure_empty_folder(dest, overwrite=overwrite):
        if os.path.lexists(dest):
            dest.rmdir()
        os.rename(new, dest)
        return
    old = temp_sibling(dest, "replaced")
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    try:
        shutil.rmtree(old)
    except OSError as exc:
        raise MaterializeError(
            f"wrote {dest}, but could not remove its old content at {old}: {exc.strerror}"
        ) from exc
