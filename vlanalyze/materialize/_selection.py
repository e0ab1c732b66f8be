"""Read selections: which media a user picked, from a file they wrote or exported.

:func:`read_selection` reads the table to materialize: a CSV, Parquet or NDJSON file with
a ``media_id`` column, ``-`` for standard input, or a polars DataFrame (whatever
``vlanalyze sql ... -o sel.csv``, ``select`` or ``top`` wrote); only ``media_id``,
``label`` and ``split`` are read. :func:`read_media_ids` reads the plain id lists of
``fetch --media-ids`` (a CSV with a ``media_id`` column, or one id per line). This
module only reads; it never prints and never touches the network.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import polars as pl

from vlanalyze.errors import SelectionError

__all__ = ["SelectionTable", "read_media_ids", "read_selection"]

USED_COLUMNS = ("media_id", "label", "split")


@dataclass(frozen=True)
class SelectionTable:
    """A checked selection: ``frame`` has media_id (unique, in order), label, split."""

    frame: pl.DataFrame
    source: str  # the file named, "-", or "<DataFrame>"
    sha256: str  # of the media_id/label/split rows, to tell selections apart
    has_label: bool
    has_split: bool

    @property
    def media_ids(self) -> list[str]:
        return self.frame.get_column("media_id").to_list()


class HasTable(Protocol):
    """What :func:`vlanalyze.select` returns, as far as materialize needs it."""

    @property
    def table(self) -> pl.DataFrame: ...


def read_selection(
    selection: str | os.PathLike[str] | pl.DataFrame | SelectionTable | BinaryIO | HasTable,
) -> SelectionTable:
    """Read and check a selection.

    Args:
        selection: a CSV / Parquet / NDJSON file with a ``media_id`` column, ``"-"``
            for standard input, a binary stream, a polars DataFrame, or what
            :func:`vlanalyze.select` returns (its ``table``).

    Returns:
        The :class:`SelectionTable`: unique media ids in their first order, with ``label``
        and ``split`` (null where the selection has no such column).

    Raises:
        SelectionError: unreadable file, no ``media_id`` column, no rows, or one
            media id given twice with different labels or splits.
    """
    if isinstance(selection, SelectionTable):
        return selection
    if isinstance(selection, pl.DataFrame):
        return _check(selection, "<DataFrame>")
    if isinstance(selection, (str, os.PathLike)) and os.fspath(selection) == "-":
        return _check(_read_bytes(sys.stdin.buffer.read(), "standard input"), "-")
    if isinstance(selection, (str, os.PathLike)):
        path = Path(selection)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SelectionError(
                f"cannot read the selection {path}: {exc.strerror}",
                hint="give a CSV, Parquet or NDJSON file with a media_id column",
            ) from None
        return _check(_read_bytes(data, str(path)), str(path))
    if hasattr(selection, "table"):  # vla.select's Selection (curate is not imported here)
        return _check(selection.table, "<Selection>")
    return _check(_read_bytes(selection.read(), "the stream"), "<stream>")


def _read_bytes(data: bytes, name: str) -> pl.DataFrame:
    """Parse Parquet (by its magic), NDJSON (a first ``{``) or CSV."""
    try:
        if data[:4] == b"PAR1":
            return pl.read_parquet(io.BytesIO(data))
        if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
            data = data.removeprefix(b"\xef\xbb\xbf")  # (a BOM: CSV takes it, NDJSON not)
            return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        text = pl.read_csv(
            io.BytesIO(data), infer_schema_length=0, encoding="utf8-lossy", raise_if_empty=False
        )
        # (CSV only: "a, b" writes " b"; typed Parquet and NDJSON values are taken exactly)
        return text.with_columns(pl.col(pl.String).str.strip_chars())
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SelectionError(
            f"cannot read the selection {name}: {first}",
            hint="give a CSV, Parquet or NDJSON file with a media_id column",
        ) from None


def _check(frame: pl.DataFrame, source: str) -> SelectionTable:
    columns = {c.lstrip("\ufeff").strip(): c for c in frame.columns}
    if "media_id" not in columns:
        listed = ", ".join(frame.columns) or "none"
        raise SelectionError(
            f"the selection {source} has no media_id column (columns: {listed})",
            hint="write it with a media_id column, e.g. vlanalyze sql EXPORT "
            "'SELECT media_id FROM media ...' -o sel.csv",
        )
    _check_types(frame, columns, source)
    picked = frame.select(
        pl.col(columns[c]).cast(pl.String).alias(c)
        if c in columns
        else pl.lit(None, pl.String).alias(c)
        for c in USED_COLUMNS
    ).filter(pl.col("media_id").is_not_null() & (pl.col("media_id") != ""))
    if picked.height == 0:
        raise SelectionError(
            f"the selection {source} has no rows", hint="select at least one media item"
        )
    if picked.get_column("media_id").n_unique() < picked.height:
        picked = picked.unique(maintain_order=True)  # the same row twice is one row
        _check_clashes(picked, source)
    digest = hashlib.sha256(picked.write_csv().encode("utf-8")).hexdigest()
    return SelectionTable(picked, source, digest, "label" in columns, "split" in columns)


def _check_types(frame: pl.DataFrame, columns: dict[str, str], source: str) -> None:
    """Raise if a used column holds lists or structs (``list(category_name) AS label``):
    one value per row, as text or a number."""
    for name in USED_COLUMNS:
        dtype = frame.schema.get(columns.get(name, ""))
        if dtype is not None and (dtype.is_nested() or dtype == pl.Object):
            raise SelectionError(
                f"the selection {source}'s {name} column holds {dtype} values, not one "
                f"{name} per row",
                hint=f"write one {name} per row (e.g. in SQL: unnest(...) AS {name}, or "
                f"pick one with list[1])",
            )


def _check_clashes(unique: pl.DataFrame, source: str) -> None:
    """Raise if one media id is left on several rows (different labels or splits)."""
    clashes = unique.filter(pl.col("media_id").is_duplicated()).get_column("media_id").unique()
    if clashes.len():
        shown = ", ".join(clashes.head(5).to_list())
        raise SelectionError(
            f"the selection {source} gives {clashes.len()} media id(s) twice with different "
            f"labels or splits: {shown}",
            hint="keep one row per media_id",
        )


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
