"""Put one file in place, atomically: copy, reflink, hardlink, symlink, from a ZIP or a URL.

Every copy is written to an unnamed file (Linux ``O_TMPFILE``) that is linked at its
destination once complete, or, where the filesystem cannot, under a hidden temporary
name that is then renamed: a destination holds a complete file or none (a kill -9
leaves nothing, or at most a temporary name, which the next run removes). Links are
created in one system call, atomic by itself; replacing an older link goes through a
temporary name too. Nothing here replaces a file an earlier run did not write. Copies
keep the source's modification time (the next run's quick check relies on it). Raises
OSError, which the caller words (a damaged ZIP member: a MaterializeError).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from vlanalyze._fs import temp_sibling
from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._zipsrc import ZIP_READ_ERRORS, split_zip_source

__all__ = ["FICLONE", "Copier"]

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share the source's extents (btrfs, xfs, ...)
_NO_REFLINK = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS}
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.ENOSYS}
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class Copier:
    """Writes files for one apply run; holds open ZIPs, folder handles, the URL opener."""

    def __init__(self, mode: str, *, url_opener: Callable[[str], Any] | None = None) -> None:
        self.mode = mode
        self.reflink_ok = mode == "reflink"
        self.reflink_fell_back = False
        self.tmpfile_ok = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
        self._zips: dict[str, zipfile.ZipFile] = {}
        self._dirs: dict[str, int] = {}
        self._url_opener = url_opener

    def close(self) -> None:
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def put(
        self, kind: str, source: str, dest: Path, mtime_ns: int | None, link: str, *, ours: bool
    ) -> None:
        """Make ``dest`` hold the bytes of ``source`` (``link``: a symlink's target).

        A file already at ``dest`` is replaced only when it is ``ours`` (an earlier run
        wrote it); otherwise it appeared since the plan, and FileExistsError says so.
        """
        if self.mode == "symlink":
            self._place(dest, lambda target: os.symlink(link, target), ours)
            return
        if self.mode == "hardlink":
            self._place(dest, lambda target: os.link(source, target), ours)
            return
        fill: Callable[[int], None]
        if kind == "file":
            fill = functools.partial(self._copy_fd, source)
        elif kind == "zip":
            fill = functools.partial(self._from_zip, source)
        else:
            fill = functools.partial(self._from_url, source)
        if self.tmpfile_ok and self._write_unnamed(dest, mtime_ns, fill):
            return
        if os.path.lexists(dest) and not ours:
            raise FileExistsError(errno.EEXIST, "appeared since the plan was made", str(dest))
        self._write(dest, mtime_ns, fill)

    @staticmethod
    def _place(dest: Path, make: Callable[[Path], None], ours: bool) -> None:
        try:
            make(dest)  # atomic, and never replaces anything
        except FileExistsError:
            if not ours:
                raise
            tmp = temp_sibling(dest)
            make(tmp)
            try:
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def _write_unnamed(self, dest: Path, mtime_ns: int | None, fill: Callable[[int], None]) -> bool:
        """Write an unnamed file (O_TMPFILE) and link it at ``dest`` once complete: atomic,
        never replacing anything, and a kill leaves no temporary name behind. False when
        the filesystem cannot, or ``dest`` is taken (the caller then writes and renames)."""
        folder = str(dest.parent)
        try:
            fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666)
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
            self.tmpfile_ok = False
            return False
        try:
            fill(fd)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            dir_fd = self._dirs.get(folder)
            if dir_fd is None:
                dir_fd = self._dirs[folder] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            # dst_dir_fd makes os.link call linkat(..., AT_SYMLINK_FOLLOW): the magic link
            # in /proc names the open file itself.
            os.link(f"/proc/self/fd/{fd}", dest.name, dst_dir_fd=dir_fd)
        except FileExistsError:
            return False
        finally:
            os.close(fd)
        return True

    @staticmethod
    def _write(dest: Path, mtime_ns: int | None, fill: Callable[[int], None]) -> None:
        tmp = temp_sibling(dest)
        fd = os.open(tmp, _FLAGS, 0o666)
        try:
            try:
                fill(fd)
                if mtime_ns is not None:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _copy_fd(self, source: str, out_fd: int) -> None:
        in_fd = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            if self.reflink_ok:
                try:
                    fcntl.ioctl(out_fd, FICLONE, in_fd)
                    return
                except OSError as exc:
                    if exc.errno not in _NO_REFLINK:
                        raise
                    self.reflink_ok = False  # this filesystem cannot: copy from now on
                    self.reflink_fell_back = True
            _copy_range(in_fd, out_fd, os.fstat(in_fd).st_size)
        finally:
            os.close(in_fd)

    def _from_zip(self, source: str, out_fd: int) -> None:
        member, archive = split_zip_source(source)
        zf = self._zips.get(archive)
        if zf is None:
            zf = self._zips[archive] = zipfile.ZipFile(archive)
        try:
            with zf.open(member) as src:
                _stream(src, out_fd)
        except ZIP_READ_ERRORS as exc:
            raise MaterializeError(
                f"the image {member!r} in {archive} is damaged: {exc}",
                hint="download the export again (files already written are kept)",
            ) from None

    def _from_url(self, source: str, out_fd: int) -> None:
        assert self._url_opener is not None
        with self._url_opener(source) as src:
            _stream(src, out_fd)


def _copy_range(in_fd: int, out_fd: int, size: int) -> None:
    """In-kernel copy (copy_file_range, then sendfile); a plain loop where neither works."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(in_fd, out_fd, size - done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        os.lseek(in_fd, done, os.SEEK_SET)
        with os.fdopen(os.dup(in_fd), "rb") as src:
            _stream(src, out_fd)
        return
    if done < size:  # the source shrank meanwhile, or the kernel stopped early
        raise OSError(errno.EIO, f"short copy: {done} of {size} bytes")


def _stream(src: IO[bytes], out_fd: int) -> None:
    with os.fdopen(os.dup(out_fd), "wb", closefd=True) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
