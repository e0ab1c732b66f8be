"""Read selections: which media a user picked, from a file they wrote or exported.

A selection is a CSV with a ``media_id`` column, or one media id per line. This module
only reads; it never prints and never touches the network.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

from vlanalyze.errors import SelectionError

__all__ = ["read_media_ids"]


def read_media_ids(lines: Iterable[str], *, source: str = "the selection") -> list[str]:
    """Read media ids: a CSV with a ``media_id`` column, or one id per line.

    Blank lines and ``#`` comments are skipped; duplicates are dropped, order is kept.

    Args:
        lines: The text, line by line (an open text file will do).
        source: How errors name it (the file's name).

    Returns:
        The ids, each once, in file order.

    Raises:
        SelectionError: A CSV without a ``media_id`` column, or no ids at all.
    """
    text = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if _is_other_header(text):
        raise SelectionError(
            f"{source} has no media_id column (its first line, {text[0].strip()!r}, is a header)",
            hint="name the column media_id, or give one id a line without a header",
        )
    if text and ("," in text[0] or text[0].strip().lower() == "media_id"):
        reader = csv.DictReader(io.StringIO("\n".join(t.rstrip("\r\n") for t in text)))
        if "media_id" not in (reader.fieldnames or []):
            raise SelectionError(
                f"{source} has no media_id column (columns: {', '.join(reader.fieldnames or [])})",
                hint="give a CSV with a media_id column, or one id per line",
            )
        ids = [(row.get("media_id") or "").strip() for row in reader]
    else:
        ids = [line.strip() for line in text]
    unique = list(dict.fromkeys(i for i in ids if i))
    if not unique:
        raise SelectionError(f"{source} holds no media ids", hint="one id per line, or a CSV")
    return unique


_UUID = re.compile(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")


def _is_other_header(text: list[str]) -> bool:
    """A one-column file whose first line is a header (``id``) above ids (UUIDs).

    Visual Layer's media ids are UUIDs: a first line that is not one, above lines that
    are, is a header. Anything else stays one id a line; ids that match nothing are
    caught when the export comes back empty.
    """
    if len(text) < 2 or "," in text[0]:
        return False
    first = text[0].strip()
    if first.lower() == "media_id" or _UUID.fullmatch(first):
        return False
    return any(_UUID.fullmatch(line.strip()) for line in text[1:4])
