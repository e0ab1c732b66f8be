"""Render a result table in one of the output formats, to a stream or a file.

Files are written atomically (a temporary sibling, then a rename) and never replace
an existing file unless ``overwrite`` is given. Nothing here prints: the caller passes
the stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import BinaryIO

import polars as pl

from vlanalyze._tablefile import write_data, write_data_file
from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._table import render_table
from vlanalyze.query._sql import Doing, map_exceptions

_SPACE_HINT = "free disk space, or write to another disk"

FORMATS = ("table", "csv", "tsv", "json", "ndjson", "parquet", "markdown")


def render(
    batches: Iterable[pl.DataFrame],
    fmt: str,
    out: BinaryIO,
    *,
    max_rows: int | None = None,
    width: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``batches`` (one result, in pieces) to the binary stream ``out``.

    Every format but ``markdown`` (meant for a page) streams: memory stays bounded by
    one batch. ``table`` (meant for a screen) shows at most ``max_rows`` rows, fitted
    to ``width`` characters, and counts the rest (see :mod:`._table`). ``metadata`` goes
    into a Parquet file's key-value metadata (other formats have none).

    Returns:
        The number of rows of the result.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "table":
        return render_table(batches, out, max_rows=max_rows, width=width)
    if fmt == "markdown":
        frames = list(batches)
        df = pl.concat(frames) if frames else pl.DataFrame()
        out.write(_pretty(df).encode() + b"\n")
        return df.height
    return write_data(batches, fmt, out, metadata=metadata)


def _pretty(df: pl.DataFrame) -> str:
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=120,
        tbl_width_chars=10_000,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="MARKDOWN",
    ):
        return str(df)


def write_file(
    batches: Iterable[pl.DataFrame],
    fmt: str,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``batches`` to ``path`` atomically; refuse to replace a file unless ``overwrite``.

    ``metadata``: key-value metadata of a Parquet file (see :func:`render`).

    Returns:
        The number of rows written.

    Raises:
        MaterializeError: ``path`` exists (and ``overwrite`` is false) or cannot be written.
    """
    doing = Doing(f"writing {path}", error=MaterializeError, space_hint=_SPACE_HINT)
    with map_exceptions(doing):
        return write_data_file(
            batches, fmt, path, overwrite=overwrite, metadata=metadata, write=render
        )
