"""What is already in an output folder, and whether this tool wrote it.

``OUT/vlanalyze-materialize.json`` records a run (export, selection, parameters, counts)
and names ``OUT/vlanalyze-materialize-files.parquet``, the files runs wrote (path, bytes;
-1: not known, e.g. a hard link): a table, not JSON, as it holds millions of paths. Both
are written *before* the first file (as ``in-progress``, listing what the run will write)
and again at the end, so a run killed midway leaves files the next run recognizes as
its own. The JSON is written first: the files table on disk always lists at least
the files there. Records of earlier versions (a ``files`` object in the JSON) are read
too. Reads only; writing is :mod:`vlanalyze.materialize._apply`'s job (this module words
the errors of writes that failed, as it knows what can be in the way).

Whose file is it? A file at a destination that no record lists is a user's: a conflict.
A file a record lists whose size is no longer the recorded one was changed by someone
since a run wrote it (an image, a layout file, ``manifest.csv``): a conflict too, as
``--prune`` spares it. A listed file at its recorded size is ours, and is rewritten
when out of date (its source changed, a new selection); so is one recorded without a
size (-1: a link, or a file a run was about to rewrite at a new size when it was
killed), as nothing tells an edit there. Sizes only: an edit that keeps the size looks
like an out-of-date file, and is rewritten.
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

__all__ = [
    "FILES_FILE",
    "MANIFEST_FILE",
    "RECORD_FILE",
    "RecordStamp",
    "dest_action",
    "file_in_the_way",
    "link_target",
    "manifest_conflict",
    "read_record",
    "record_stamp",
    "side_action",
    "write_error",
]

MANIFEST_FILE = "manifest.csv"
RECORD_FILE = "vlanalyze-materialize.json"
FILES_FILE = "vlanalyze-materialize-files.parquet"


def read_record(out: Path) -> dict[str, int]:
    """The files (path -> bytes) earlier runs wrote into ``out``; {} if none did."""
    path = out / RECORD_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
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
    return {str(k): int(v) if isinstance(v, int) else -1 for k, v in files.items()}


RecordStamp = tuple[int, int, int] | None


def record_stamp(out: Path) -> RecordStamp:
    """What tells one state of ``out``'s record from another (each is written by an
    atomic rename: a new inode); None when there is no record."""
    try:
        st = os.stat(out / RECORD_FILE)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_files(path: Path) -> dict[str, int]:
    """The files table; {} when it is not there yet (a run killed between the two
    writes of its record, before any image): every file then counts as a user's."""
    try:
        table = pl.read_parquet(path, columns=["path", "bytes"])
    except FileNotFoundError:
        return {}
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MaterializeError(
            f"cannot read {path}: {exc}",
            hint="it is not a vlanalyze files table; move the folder's "
            f"{RECORD_FILE} and {FILES_FILE} away, or choose another folder",
        ) from None
    sizes = table["bytes"].fill_null(-1).to_list()
    return dict(zip(table["path"].to_list(), sizes, strict=True))


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
    previous: dict[str, int],
) -> str:
    """write / skip / conflict / missing for one image destination."""
    if source is None:
        return "missing"
    path = f"{out}/{dest}"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "write"
    except NotADirectoryError:
        return "conflict"
    if dest not in previous or stat.S_ISDIR(st.st_mode) or _edited(st, previous[dest]):
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


def side_action(out: Path, rel: str, data: bytes, previous: dict[str, int]) -> str:
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
    recorded = previous.get(rel)
    if recorded is None or 0 <= recorded != len(current):  # not ours, or edited since
        return "conflict"
    return "write"


def manifest_conflict(out: Path, previous: dict[str, int]) -> bool:
    """Whether ``OUT/manifest.csv`` is not ours as written: no record lists it, or its
    size is not the recorded one (apply rewrites it otherwise, where it differs)."""
    try:
        st = os.lstat(out / MANIFEST_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return False
    recorded = previous.get(MANIFEST_FILE)
    return recorded is None or stat.S_ISDIR(st.st_mode) or _edited(st, recorded)


def _edited(st: os.stat_result, recorded: int) -> bool:
    """Whether a file a run wrote was changed since: a file recorded with a size (-1:
    not recorded, nothing to tell by) that is no longer a regular file of that size
    (edited, or replaced by a symlink). What prune spares."""
    return recorded >= 0 and (not stat.S_ISREG(st.st_mode) or st.st_size != recorded)
