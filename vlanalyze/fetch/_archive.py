"""Safe, atomic extraction of a Visual Layer export ZIP: this module's one job.

:func:`extract_archive` first plans the extraction from the central directory alone
(:func:`safe_member_path` for every name, links, duplicates, zip-bomb limits), then
writes into a hidden sibling of ``dest`` and renames it into place only when every
member is complete. It never writes outside that sibling and ``dest``.

It *rejects* a hostile or ambiguous archive rather than renaming or skipping members:
metadata rows refer to images by path, so a renamed or skipped file silently breaks the
dataset, and an archive holding ``../x`` or a symlink came from a source that should not
be trusted with the rest of the disk either. Names that collide only on a
case-insensitive or Unicode-normalising file system (macOS, Windows) are rejected for
the same reason: there, one of the two files would be lost.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from vlanalyze._fs import ProgressCallback, ensure_empty_folder, make_temp_folder, replace_folder
from vlanalyze._metadata import zip_member_name
from vlanalyze.errors import ArchiveError, MaterializeError, UnsafeArchiveError

__all__ = [
    "DEFAULT_MAX_MEMBERS",
    "DEFAULT_MAX_TOTAL_SIZE",
    "MAX_COMPRESSION_RATIO",
    "extract_archive",
    "safe_member_path",
]

DEFAULT_MAX_MEMBERS = 2_000_000
DEFAULT_MAX_TOTAL_SIZE = 200 * 1024**3
#: Uncompressed/compressed size above which a member is a bomb. Images barely
#: compress and JSON about 10x; deflate tops out near 1030x on runs of zeros.
MAX_COMPRESSION_RATIO = 200
#: Members smaller than this are never judged by ratio (a tiny file of spaces is fine).
_RATIO_FLOOR = 1024**2
_CHUNK = 1024**2
_DRIVE = re.compile(r"[A-Za-z]:")
_RE_DOWNLOAD = "re-download the export"


def safe_member_path(name: str) -> pathlib.PurePosixPath:
    """Validate a ZIP member name and return it as a clean relative path.

    Empty and ``.`` components are dropped (``./a//b`` -> ``a/b``); anything that
    could point outside the target, or means something else on another OS, is refused.

    Args:
        name: The member name as stored in the archive (``ZipInfo.orig_filename``).

    Returns:
        The normalised relative path, never empty.

    Raises:
        UnsafeArchiveError: absolute, drive letter, backslash, ``..``, NUL or empty.
    """
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if "\x00" in name:
        reason = "has a NUL byte in its name"
    elif name.startswith("/"):
        reason = "is an absolute path"
    elif _DRIVE.match(name):
        reason = "starts with a Windows drive letter"
    elif "\\" in name:
        # A separator on Windows and a plain character elsewhere: ambiguous, so refused.
        reason = "has a backslash in its name"
    elif ".." in parts:
        reason = "has a '..' component"
    elif not parts:
        reason = "has an empty name"
    else:
        return pathlib.PurePosixPath(*parts)
    raise _unsafe(name, reason)


def _unsafe(member: str, reason: str, hint: str = "nothing was extracted") -> UnsafeArchiveError:
    return UnsafeArchiveError(f"archive member {member!r} {reason}", hint=hint)


@dataclass(frozen=True)
class _Plan:
    dirs: list[tuple[str, ...]]  # parents before children
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]  # in archive order
    total_size: int


def _check_kind(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    name = info.orig_filename
    if stat.S_ISLNK(mode):
        raise _unsafe(name, "is a symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _unsafe(name, "is not a regular file or directory")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"archive member {name!r} is encrypted", hint="not supported")


def _check_size(info: zipfile.ZipInfo, total: int, max_total_size: int) -> None:
    name = info.orig_filename
    if total > max_total_size:
        raise _unsafe(
            name,
            f"brings the declared uncompressed size to {total} bytes, over the limit of "
            f"{max_total_size}",
            hint="raise max_total_size if the export really is that large",
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR and ratio > MAX_COMPRESSION_RATIO:
        raise _unsafe(
            name,
            f"expands {ratio:.0f}x ({info.compress_size} -> {info.file_size} bytes): a zip bomb",
        )


class _Names:
    """Collision keys of every path the archive creates, files and directories alike."""

    def __init__(self) -> None:
        # key -> (exact path, is_dir, explicit directory member, member that made it)
        self._seen: dict[str, tuple[tuple[str, ...], bool, bool, str]] = {}

    def add(self, parts: tuple[str, ...], *, is_dir: bool, explicit: bool, member: str) -> None:
        key = unicodedata.normalize("NFC", "/".join(parts)).casefold()
        old = self._seen.get(key)
        if old is None:
            self._seen[key] = (parts, is_dir, explicit, member)
            return
        old_parts, old_is_dir, old_explicit, old_member = old
        if is_dir and old_is_dir and parts == old_parts and not (explicit and old_explicit):
            if explicit:
                self._seen[key] = (parts, True, True, member)
            return
        raise _unsafe(
            member, f"has the same path as {old_member!r}, ignoring case, Unicode form, '.', '//'"
        )


def _plan(infos: Iterable[zipfile.ZipInfo], *, max_members: int, max_total_size: int) -> _Plan:
    """Check every member from the central directory alone; touch no disk."""
    infos = list(infos)
    if len(infos) > max_members:
        raise UnsafeArchiveError(
            f"archive has {len(infos)} members, over the limit of {max_members}",
            hint="raise max_members if the export really is that large",
        )
    names = _Names()
    dirs: set[tuple[str, ...]] = set()
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    total = 0
    for info in infos:
        member = zip_member_name(info, info.orig_filename)
        parts = safe_member_path(member).parts
        _check_kind(info)
        is_dir = member.endswith("/")
        for depth in range(1, len(parts)):
            dirs.add(parts[:depth])
            names.add(parts[:depth], is_dir=True, explicit=False, member=member)
        names.add(parts, is_dir=is_dir, explicit=is_dir, member=member)
        if is_dir:
            dirs.add(parts)
            continue
        total += info.file_size
        _check_size(info, total, max_total_size)
        files.append((info, parts))
    files.sort(key=lambda item: item[0].header_offset)  # read the archive front to back
    return _Plan(sorted(dirs), files, total)


def _ensure_inside(root: pathlib.Path, path: pathlib.Path, member: str) -> None:
    """Refuse ``path`` unless it resolves inside ``root`` (itself already resolved)."""
    # is_relative_to on resolved paths, not a string prefix: "/x/out" is a prefix of
    # "/x/outside".
    if not path.resolve().is_relative_to(root):
        raise _unsafe(member, f"would be written outside {root}")


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: str) -> int:
    """Write one member to ``target`` (a new file) and return its size."""
    name = info.orig_filename
    written = 0
    try:
        # "xb": O_EXCL never follows a link that might have appeared at ``target``.
        with zf.open(info) as src, open(target, "xb") as dst:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise _unsafe(name, f"produced more than its declared {info.file_size} bytes")
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ArchiveError(f"archive member {name!r} is corrupt: {exc}", hint=_RE_DOWNLOAD) from exc
    except NotImplementedError as exc:
        raise ArchiveError(f"archive member {name!r} cannot be read: {exc}") from exc
    if written != info.file_size:
        raise ArchiveError(
            f"archive member {name!r} has {written} bytes, not the declared {info.file_size}",
            hint=_RE_DOWNLOAD,
        )
    return written


def _apply(
    zf: zipfile.ZipFile, plan: _Plan, root: pathlib.Path, on_progress: ProgressCallback | None
) -> None:
    """Create the planned tree under ``root``, a fresh folder of our own."""
    resolved_root = root.resolve()
    for parts in plan.dirs:  # each directory once, parents first
        path = root.joinpath(*parts)
        path.mkdir()
        _ensure_inside(resolved_root, path, "/".join(parts))
    # Files go into directories checked above under a name that is one plain component
    # (safe_member_path), so they cannot escape without resolving each one.
    base = str(root)
    done = 0
    if on_progress is not None:
        on_progress(0, plan.total_size)
    for info, parts in plan.files:
        done += _copy_member(zf, info, os.path.join(base, *parts))
        if on_progress is not None:
            on_progress(done, plan.total_size)


def _open_zip(archive: pathlib.Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ArchiveError(
            f"{archive} is not a valid ZIP archive (corrupt or truncated): {exc}",
            hint=_RE_DOWNLOAD,
        ) from exc
    except OSError as exc:
        raise ArchiveError(f"cannot open archive {archive}: {exc.strerror or exc}") from exc


def extract_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    on_progress: ProgressCallback | None = None,
) -> pathlib.Path:
    """Extract a ZIP into ``dest`` safely and atomically.

    Args:
        archive: The ZIP file.
        dest: The folder to create. May exist if empty; with ``overwrite``, a non-empty
            one is replaced once the new content is complete.
        overwrite: Replace a non-empty ``dest``.
        max_members: Refuse archives with more members than this.
        max_total_size: Refuse archives declaring more uncompressed bytes than this.
        on_progress: Called as ``on_progress(done_bytes, total_bytes)`` after each member.

    Returns:
        The absolute path of ``dest``.

    Raises:
        ArchiveError: the archive is missing, corrupt, truncated or encrypted.
        UnsafeArchiveError: a member is hostile (see :func:`safe_member_path`), a link,
            a duplicate, or the archive is a zip bomb. Nothing is written.
        MaterializeError: ``dest`` is not empty and ``overwrite`` is false, or not a folder.
    """
    archive_path = pathlib.Path(archive)
    dest_path = pathlib.Path(os.path.abspath(dest))
    ensure_empty_folder(dest_path, overwrite=overwrite)
    with _open_zip(archive_path) as zf:
        plan = _plan(zf.infolist(), max_members=max_members, max_total_size=max_total_size)
        try:
            tmp = make_temp_folder(dest_path, "extracting")
        except OSError as exc:
            raise _write_error(dest_path, exc) from None
        try:
            _apply(zf, plan, tmp, on_progress)
            replace_folder(tmp, dest_path, overwrite=overwrite)
        except BaseException as exc:
            # Ours alone, and incomplete: an interrupted run must never look finished.
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise _write_error(dest_path, exc) from None
            raise
    return dest_path


def _write_error(dest: pathlib.Path, exc: OSError) -> MaterializeError:
    """A failed write (disk full, read-only, no permission) as one clear line."""
    return MaterializeError(
        f"cannot extract into {dest}: {exc.strerror or exc}",
        hint="free some disk space, or choose another output folder",
    )
