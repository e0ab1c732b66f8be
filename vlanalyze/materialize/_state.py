"""What is already in an output folder, and whether this tool wrote it.

``OUT/vlanalyze-materialize.json`` records a run (export, selection, parameters, counts)
and names ``OUT/vlanalyze-materialize-files.parquet``, the files runs wrote (path; bytes,
-1 when not known, :data:`LINKED` for a link; mtime_ns as written, null when not known):
a table, not JSON, as it holds millions of paths. Both are written *before* the first
file (as ``in-progress``, listing what the run will write) and again at the end, so a
run killed midway leaves files the next run recognizes as its own. The JSON is written
first: the files table on disk always lists at least the files there. Records of
earlier versions (a ``files`` object in the JSON; a table without mtimes) are read too.
Reads only; writing is :mod:`vlanalyze.materialize._apply`'s job (this module words the
errors of writes that failed, as it knows what can be in the way).

Whose file is it? A file at a destination that no record lists is a user's: a conflict.
A listed file changed by someone since a run wrote it (an image, a layout file,
``manifest.csv``) is a conflict too, as ``--prune`` spares it: no longer a regular file
of the recorded size, or of the recorded mtime (an edit that keeps the size: but an
image whose mtime alone changed that still holds its source's bytes is not edited); a
link a run made that is now a file of its own (not a symlink, not sharing its inode:
saved over by an editor, or the last copy of an image whose source is gone). A listed file
that is not changed is ours, and is rewritten when out of date (its source changed, a
new selection); so is one recorded without a size (-1: a file a run was about to
rewrite at a new size when it was killed), as nothing tells an edit there.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from functools import lru_cache
from pathlib import Path

import polars as pl

from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._verify import same_content

__all__ = [
    "FILES_FILE",
    "LINKED",
    "MANIFEST_FILE",
    "RECORD_FILE",
    "RecordStamp",
    "Recorded",
    "appeared_error",
    "dest_action",
    "edited",
    "file_in_the_way",
    "link_target",
    "manifest_conflict",
    "read_record",
    "record_stamp",
    "side_action",
    "write_error",
]

MANIFEST_FILE = "manifest.csv"
LINKED = -2  # a record's size for a hard link or symlink a run made (no size known)
RECORD_FILE = "vlanalyze-materialize.json"
FILES_FILE = "vlanalyze-materialize-files.parquet"


Recorded = tuple[dict[str, int], dict[str, int]]


def read_record(out: Path) -> Recorded:
    """The files earlier runs wrote into ``out``: path -> bytes, and path -> mtime_ns
    where it is known; ({}, {}) if none did."""
    path = out / RECORD_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}, {}
    except NotADirectoryError:
        blocker = file_in_the_way(out) or out
        raise MaterializeError(
            f"{blocker} is a file, not a folder", hint="choose a folder for the output"
        ) from None
    except (OSError, ValueError) as exc:
        raise MaterializeError(
            f"cannot read {path}: {exc}",
            hint="it is not a vlanalyze record; move it away, or choose another folder",
        ) from None
    if isinstance(data, dict) and data.get("files_table") == FILES_FILE:
        return _read_files(out / FILES_FILE)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise MaterializeError(
            f"{path} is not a vlanalyze materialize record (no files)",
            hint="move it away, or choose another folder",
        )
    return {str(k): int(v) if isinstance(v, int) else -1 for k, v in files.items()}, {}


RecordStamp = tuple[int, int, int] | None


def record_stamp(out: Path) -> RecordStamp:
    """What tells one state of ``out``'s record from another (each is written by an
    atomic rename: a new inode); None when there is no record."""
    try:
        st = os.stat(out / RECORD_FILE)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_files(path: Path) -> Recorded:
    """The files table; empty when it is not there yet (a run killed between the two
    writes of its record, before any image): every file then counts as a user's."""
    try:
        table = pl.read_parquet(path)
        table = table.select("path", "bytes", pl.col("^mtime_ns$"))  # (older: no mtime_ns)
    except FileNotFoundError:
        return {}, {}
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MaterializeError(
            f"cannot read {path}: {exc}",
            hint="it is not a vlanalyze files table; move the folder's "
            f"{RECORD_FILE} and {FILES_FILE} away, or choose another folder",
        ) from None
    sizes = table["bytes"].fill_null(-1).to_list()
    mtimes: dict[str, int] = {}
    if "mtime_ns" in table.columns:
        known = table.filter(pl.col("mtime_ns").is_not_null())
        mtimes = dict(zip(known["path"].to_list(), known["mtime_ns"].to_list(), strict=True))
    return dict(zip(table["path"].to_list(), sizes, strict=True)), mtimes


def file_in_the_way(path: Path) -> Path | None:
    """The file (anything but a folder) at ``path`` or at the nearest of its parents that
    exists: what stops ``path`` being made a folder or written under. None when that
    nearest existing path is a folder (a symlink to one counts as one)."""
    for candidate in (path, *path.parents):
        try:
            st = os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.islink(candidate):
                return candidate  # a dangling link
            continue
        except OSError:
            return None
        return None if stat.S_ISDIR(st.st_mode) else candidate
    return None


_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def appeared_error(path: Path) -> MaterializeError:
    """The error for a file found at ``path`` that was not there when the plan was made."""
    return MaterializeError(
        f"{path} appeared while vlanalyze was writing; it was left as it is",
        hint="if another run is writing into this folder, run again once it is done; "
        "otherwise move the file away and run again",
    )


def write_error(path: Path, exc: OSError, hint: str) -> MaterializeError:
    """The error for a failed write of ``path`` (``hint``: the next step when nothing
    more precise is known, e.g. "choose an output folder you can write to")."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOTDIR:
        blocker = file_in_the_way(path.parent)
        if blocker is not None:
            return MaterializeError(
                f"cannot write {path}: {blocker} is a file, not a folder",
                hint="move it away, or choose another place",
            )
    elif exc.errno == errno.ENOENT and not path.parent.is_dir():
        return MaterializeError(
            f"cannot write {path}: the folder {path.parent} does not exist",
            hint="create it first, or choose a folder that exists",
        )
    elif exc.errno in _NO_SPACE:
        hint = "free disk space, or write to another disk"
    elif exc.errno not in _NOT_ALLOWED:
        hint = "check the folder, then run again"
    return MaterializeError(f"cannot write {path}: {reason}", hint=hint)


@lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def link_target(out: Path, dest: str, source: str, absolute: bool) -> str:
    """What a symlink at ``out/dest`` holds: ``source``, relative to the link's real folder
    unless ``absolute`` (relative links survive moving the folders or a container mount)."""
    src_real = os.path.join(_real_dir(os.path.dirname(source)), os.path.basename(source))
    if absolute:
        return src_real
    link_dir = _real_dir(os.path.dirname(os.path.join(out, dest)))
    return os.path.relpath(src_real, link_dir)


def dest_action(
    out: Path,
    dest: str,
    source: str | None,
    kind: str | None,
    size: int | None,
    mtime_ns: int | None,
    mode: str,
    absolute: bool,
    recorded: Recorded,
) -> str:
    """write / skip / conflict / missing for one image destination (``recorded``: what
    :func:`read_record` read)."""
    if source is None:
        return "missing"
    path = f"{out}/{dest}"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "write"
    except NotADirectoryError:
        return "conflict"
    sizes, mtimes = recorded
    if dest not in sizes or stat.S_ISDIR(st.st_mode):
        return "conflict"
    if edited(st, sizes[dest], mtimes.get(dest)) and not _touched(
        st, sizes[dest], path, kind, source
    ):
        return "conflict"
    if mode == "symlink":
        target = link_target(out, dest, source, absolute)
        up_to_date = stat.S_ISLNK(st.st_mode) and os.readlink(path) == target
    else:
        up_to_date = _same_file(st, source, size, mtime_ns, mode)
    return "skip" if up_to_date else "write"


def _same_file(
    st: os.stat_result, source: str, size: int | None, mtime_ns: int | None, mode: str
) -> bool:
    if not stat.S_ISREG(st.st_mode):
        return False
    if mode == "hardlink":
        return _same_inode(st, source)
    if st.st_nlink > 1 and _same_inode(st, source):
        return False  # an earlier run's hard link: editing this "copy" would edit the export
    # rsync's quick check: same size, same mtime (copies keep the source's mtime).
    return st.st_size == size and (mtime_ns is None or st.st_mtime_ns == mtime_ns)


def _same_inode(st: os.stat_result, source: str) -> bool:
    try:
        src = os.stat(source)
    except OSError:
        return False
    return (src.st_ino, src.st_dev) == (st.st_ino, st.st_dev)


def _touched(st: os.stat_result, size: int, path: str, kind: str | None, source: str) -> bool:
    """Whether a file whose mtime alone changed (``touch``, a copy of the folder without
    ``-p``) still holds its source's bytes: not an edit, then (read only in that case)."""
    if kind not in ("file", "zip") or not stat.S_ISREG(st.st_mode) or st.st_size != size:
        return False
    return same_content(kind, source, Path(path), {})


def side_action(out: Path, rel: str, data: bytes, recorded: Recorded) -> str:
    """write / skip / conflict for a layout file whose content is ``data``."""
    path = out / rel
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        return "write"
    except (IsADirectoryError, NotADirectoryError):
        return "conflict"
    if current == data:
        return "skip"
    return "conflict" if _not_ours(path, rel, recorded) else "write"


def manifest_conflict(out: Path, recorded: Recorded) -> bool:
    """Whether ``OUT/manifest.csv`` is not ours as written: no record lists it, or it
    changed since (apply rewrites it otherwise, where it differs)."""
    try:
        os.lstat(out / MANIFEST_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return False
    # (by size: its content is compared only when the run makes it, and a touched
    # manifest.csv must not stop a run)
    return _not_ours(out / MANIFEST_FILE, MANIFEST_FILE, (recorded[0], {}))


def _not_ours(path: Path, rel: str, recorded: Recorded) -> bool:
    sizes, mtimes = recorded
    if rel not in sizes:
        return True
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) or edited(st, sizes[rel], mtimes.get(rel))


def edited(st: os.stat_result, size: int, mtime_ns: int | None) -> bool:
    """Whether a file a run wrote (recorded with ``size`` and ``mtime_ns``) was changed
    since: no longer a regular file of that size and mtime; for a link (:data:`LINKED`),
    a regular file of its own (one name: not our hard link, nor a symlink). -1: nothing
    to tell by. What prune spares."""
    if size == LINKED:
        return stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    if size < 0:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        return True
    return mtime_ns is not None and st.st_mtime_ns != mtime_ns
