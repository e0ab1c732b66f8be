"""Render a result table in one of the output formats, to a stream or a file.

Files are written atomically (a temporary sibling, then a rename) and never replace
an existing file unless ``overwrite`` is given. Nothing here prints: the caller passes
the stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow.parquet as pq

from vlanalyze._fs import atomic_file
from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._table import render_table
from vlanalyze.query._sql import Doing, map_exceptions

_SPACE_HINT = "free disk space, or write to another disk"

FORMATS = ("table", "csv", "tsv", "json", "ndjson", "parquet", "markdown")


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """Nested columns as JSON text, durations as ISO 8601, for the text formats."""
    durations = [n for n, dtype in df.schema.items() if isinstance(dtype, pl.Duration)]
    if durations:
        df = df.with_columns(pl.col(n).dt.to_string("iso") for n in durations)
    nested = [
        name
        for name, dtype in df.schema.items()
        if isinstance(dtype, (pl.List, pl.Struct, pl.Array))
    ]
    if not nested:
        return df
    # polars encodes structs only: wrap each value as {"v": value}, then cut the
    # wrapper's text ('{"v":' and the last '}') away.
    return df.with_columns(
        pl.struct(pl.col(n).alias("v")).struct.json_encode().str.slice(5).str.head(-1).alias(n)
        for n in nested
    )


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
    if fmt == "parquet":
        return _parquet(batches, out, metadata)
    if fmt == "json":
        return _json(batches, out)
    rows = 0
    for i, df in enumerate(batches):
        if fmt == "ndjson":
            df.write_ndjson(out)
        else:
            sep = "," if fmt == "csv" else "\t"
            _flatten(df).write_csv(out, separator=sep, include_header=i == 0)
        rows += df.height
    return rows


def _json(batches: Iterable[pl.DataFrame], out: BinaryIO) -> int:
    """One JSON array of row objects across all batches."""
    out.write(b"[")
    rows = 0
    for df in batches:
        body = df.write_json().strip()[1:-1]
        if body:
            out.write((b"," if rows else b"") + body.encode())
        rows += df.height
    out.write(b"]\n")
    return rows


def _parquet(
    batches: Iterable[pl.DataFrame], out: BinaryIO, metadata: Mapping[str, str] | None = None
) -> int:
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for df in batches:
            table = df.to_arrow()
            if metadata:
                table = table.replace_schema_metadata(dict(metadata))
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += df.height
    finally:
        if writer is not None:
            writer.close()
    return rows


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
    target = Path(path)
    doing = Doing(f"writing {target}", error=MaterializeError, space_hint=_SPACE_HINT)
    try:
        with map_exceptions(doing), atomic_file(target, overwrite=overwrite) as fh:
            return render(batches, fmt, fh, metadata=metadata)
    except OSError as exc:
        raise MaterializeError(f"cannot write {target}: {exc.strerror or exc}") from None
