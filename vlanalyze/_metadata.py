"""What both the fetch and query layers know of the export format, and nothing more.

The metadata file names, telling a ZIP, a JSON and a Parquet file apart by their first
bytes, and reading an export's ``info`` block cheaply: from the head of a
``metadata.json`` (Visual Layer writes ``info`` before ``media_items``) or from the
key-value metadata of a ``metadata.parquet``; the names of a ZIP's members as ``unzip``
shows them (:func:`zip_member_name`). It never reads the media items, imports
no other vlanalyze module but :mod:`vlanalyze.errors`, and never writes.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import IO, Any

__all__ = [
    "METADATA_NAMES",
    "READ_ORDER",
    "find_metadata_file",
    "info_from_json_head",
    "read_export_info",
    "sniff_format",
    "zip_member_name",
]

METADATA_NAMES = ("metadata.json", "metadata.parquet")
#: A real export holds one metadata file. Where both are (a folder or ZIP), metadata.parquet
#: is read: the same tables, typed, and several times faster to load.
READ_ORDER = ("metadata.parquet", "metadata.json")

#: The ``info`` block sits at the head of the file; stop looking after this much.
_MAX_HEAD_BYTES = 64 << 20
_WHITESPACE = " \t\r\n"


def sniff_format(path: Path) -> str | None:
    """``"zip"``, ``"parquet"`` or ``"json"`` from the first bytes of ``path``; else None.

    Raises:
        OSError: ``path`` cannot be read.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head == b"PAR1":
        return "parquet"
    if head.lstrip()[:1] in (b"{", b"[", b"") or head.startswith(b"\xef\xbb\xbf"):
        return "json"
    return None


def find_metadata_file(folder: Path) -> Path | None:
    """The metadata file in ``folder`` or one of its sub-folders (the first found), or None."""
    for candidate in (folder, *sorted(d for d in folder.iterdir() if d.is_dir())):
        for name in READ_ORDER:
            if (candidate / name).is_file():
                return candidate / name
    return None


def read_export_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``info`` block of the export at ``path`` (a folder or metadata file); {} if none.

    Raises:
        OSError: the file cannot be read.
        ValueError: the head of a JSON file is not valid JSON.
    """
    p = Path(path)
    found = find_metadata_file(p) if p.is_dir() else p
    if found is None:
        return {}
    fmt = sniff_format(found)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        raw = (pq.read_schema(found).metadata or {}).get(b"info")
        info = json.loads(raw) if raw else {}
    elif fmt == "json":
        with found.open("rb") as fh:
            info = _json_info(fh)
    else:
        return {}
    return info if isinstance(info, dict) else {}


def info_from_json_head(fh: IO[bytes]) -> dict[str, Any]:
    """The ``info`` block at the head of a ``metadata.json`` stream (a ZIP member will
    do); {} if there is none before ``media_items``.

    Raises:
        ValueError: the head is not valid JSON.
    """
    info = _json_info(fh)
    return info if isinstance(info, dict) else {}


def _json_info(fh: IO[bytes]) -> Any:
    """The value of the top-level ``info`` key, looking only at keys before ``media_items``."""
    buffer = b""
    while True:
        more = fh.read(max(1 << 16, len(buffer)))
        buffer += more
        try:
            return _scan_head(buffer.decode("utf-8-sig", errors="ignore"))
        except (_NeedMore, json.JSONDecodeError) as exc:
            # An error in a buffer that is not the whole file may be a cut-off value.
            if not more:
                if isinstance(exc, json.JSONDecodeError):
                    raise
                return None
            if len(buffer) > _MAX_HEAD_BYTES:
                return None


class _NeedMore(Exception):
    """The head read so far ends before the answer."""


def _scan_head(text: str) -> Any:
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if text[pos] != "{":
        return None
    pos += 1
    while True:
        pos = _skip(text, pos)
        if text[pos] != '"':
            return None  # '}': an object without info
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise json.JSONDecodeError("expected ':'", text, pos)
        pos = _skip(text, pos + 1)
        if key == "media_items":
            return None
        value, pos = decoder.raw_decode(text, pos)
        if key == "info":
            return value
        pos = _skip(text, pos)
        if text[pos] != ",":
            return None
        pos += 1


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    if pos >= len(text):
        raise _NeedMore
    return pos


def zip_member_name(info: zipfile.ZipInfo, name: str | None = None) -> str:
    """A member's name (``name``, default ``info.filename``) as ``unzip`` shows it.

    Info-ZIP's ``zip`` on Linux stores UTF-8 names without the ZIP's UTF-8 flag, and
    Python then decodes them as cp437 (``café`` reads ``caf├⌐``): a flagless name
    whose bytes are valid UTF-8 is taken as UTF-8, as ``unzip`` does. Open the member
    by its ``ZipInfo``, not by this name.
    """
    name = info.filename if name is None else name
    if info.flag_bits & 0x800 or name.isascii():
        return name
    try:
        return name.encode("cp437").decode("utf-8")
    except UnicodeError:
        return name
