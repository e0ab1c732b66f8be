"""Images read in place from an export's ZIP: which members are images, and their URIs.

A source is ``zip://<member>::<archive>`` (an fsspec chained URL). Members whose bytes
are not the image (symbolic links, encrypted, a compression Python cannot read) are
refused when the plan is made; :data:`ZIP_READ_ERRORS` is what reading a damaged one
raises.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from vlanalyze._metadata import zip_member_name
from vlanalyze.errors import MaterializeError

__all__ = ["ZIP_READ_ERRORS", "split_zip_source", "zip_sources"]


def zip_sources(archive: Path, prefix: str, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """SOURCE_SCHEMA rows of the members ``prefix + rel`` of ``archive`` for ``pairs``
    (media_id, rel) that it holds; a member whose bytes are not the image is refused."""
    with zipfile.ZipFile(archive) as zf:
        infos = {zip_member_name(i): i for i in zf.infolist()}
    rows = []
    for media_id, rel in pairs:
        info = infos.get(prefix + rel)
        if info is None:
            continue
        problem = _member_problem(info)
        if problem:
            raise MaterializeError(
                f"the export {archive} holds the image {info.filename!r} {problem}: it "
                "cannot be read in place",
                hint="download the export again, or leave that image out of the selection",
            )
        rows.append(
            {
                "media_id": media_id,
                "source": f"zip://{info.filename}::{os.path.abspath(archive)}",
                "kind": "zip",
                "bytes": info.file_size,
                "mtime_ns": zip_mtime_ns(info),
                "dev": None,
            }
        )
    return rows


# What reading a damaged member raises (a bad CRC or header, a truncated stream...).
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)
_READABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member's bytes are not the image (seen in the central directory), if so."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "as a symbolic link"
    if kind not in (0, stat.S_IFREG):
        return "as a special file"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.compress_type not in _READABLE:
        return f"compressed with method {info.compress_type}, which Python cannot read"
    return None


def split_zip_source(source: str) -> tuple[str, str]:
    """The member and the archive of a ``zip://<member>::<archive>`` source: the archive
    is the first tail after a ``::`` that is a file (a member's name may hold ``::``)."""
    rest = source[len("zip://") :]
    at = rest.find("::")
    while at >= 0:
        if os.path.isfile(rest[at + 2 :]):
            return rest[:at], rest[at + 2 :]
        at = rest.find("::", at + 2)
    member, _sep, archive = rest.partition("::")
    return member, archive


def zip_mtime_ns(info: zipfile.ZipInfo) -> int:
    """A member's modification time as unzip sets it, in whole seconds, as ns: the
    extended timestamp (UTC, to the second) where the member has one, else the DOS
    time (local, to 2 seconds)."""
    extended = _extended_mtime(info.extra)
    if extended is not None:
        return extended * 1_000_000_000
    try:
        stamp = dt.datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        stamp = 315532800.0  # 1980-01-01, the ZIP epoch
    return int(stamp) * 1_000_000_000


def _extended_mtime(extra: bytes) -> int | None:
    """The mtime of a ZIP extra field's extended timestamp (0x5455), if it holds one."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        data = extra[at + 4 : at + 4 + size]
        if kind == 0x5455 and len(data) >= 5 and data[0] & 1:
            return int(struct.unpack_from("<i", data, 1)[0])
        at += 4 + size
    return None
