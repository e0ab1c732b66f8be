"""Compare a written file with its source, byte for byte (``verify=True`` / ``--verify``).

The quick check (size and mtime) misses a file changed in place with its mtime put
back; this reads both sides. Reads only.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from vlanalyze.materialize._sources import url_filesystem
from vlanalyze.materialize._zipsrc import ZIP_READ_ERRORS, split_zip_source

__all__ = ["same_content"]

_BLOCK = 1 << 20


def same_content(kind: str, source: str, dest: Path, options: Mapping[str, Any]) -> bool:
    """True when ``dest`` holds exactly the bytes of ``source`` (a file, ZIP member or URL)."""
    with ExitStack() as stack:
        try:
            mine = stack.enter_context(dest.open("rb"))
            theirs = stack.enter_context(_open(kind, source, stack, options))
        except OSError:
            return False
        except Exception:
            if kind != "url":
                raise
            return False  # the store's own error: rewriting it words that error
        try:
            return _same_bytes(mine, theirs)
        except ZIP_READ_ERRORS:
            return False  # a damaged member: rewriting it words the error


def _same_bytes(mine: IO[bytes], theirs: IO[bytes]) -> bool:
    while True:
        a, b = mine.read(_BLOCK), theirs.read(_BLOCK)
        if a != b:
            return False
        if not a:
            return True


def _open(kind: str, source: str, stack: ExitStack, options: Mapping[str, Any]) -> IO[bytes]:
    if kind == "file":
        return open(source, "rb")
    if kind == "zip":
        member, archive = split_zip_source(source)
        zf = stack.enter_context(zipfile.ZipFile(archive))
        return zf.open(member)
    fs = url_filesystem(source, options)
    handle: IO[bytes] = fs.open(source, "rb")
    return handle
