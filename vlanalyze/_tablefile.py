"""Write a table, batch by batch, in one of the data formats: CSV, TSV, JSON, NDJSON, Parquet.

The one writer of result tables, shared by the query results the CLI writes
(:mod:`vlanalyze.materialize._output`) and curate's selections. Streams: memory stays
bounded by one batch. Writes to the stream it is given; atomic files are the caller's
(:mod:`vlanalyze._fs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow.parquet as pq

from vlanalyze._fs import atomic_file

DATA_FORMATS = ("csv", "tsv", "json", "ndjson", "parquet")

#: ``write(batches, fmt, out, metadata=...) -> rows``: :func:`write_data`, or a caller's
#: renderer that knows more formats.
Writer = Callable[..., int]


def write_data(
    batches: Iterable[pl.DataFrame],
    fmt: str,
    out: BinaryIO,
    *,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``batches`` (one table, in pieces) to ``out`` as ``fmt``; the number of rows.

    Nested values and durations become text in CSV/TSV; ``metadata`` goes into a
    Parquet file's key-value metadata (the other formats have none).
    """
    if fmt not in DATA_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(DATA_FORMATS)}")
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


def write_data_file(
    batches: Iterable[pl.DataFrame],
    fmt: str,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
    write: Writer | None = None,
) -> int:
    """Write ``batches`` to ``path`` atomically with ``write`` (default :func:`write_data`).

    Returns:
        The number of rows written.

    Raises:
        MaterializeError: ``path`` exists (without ``overwrite``).
        OSError: it cannot be written (callers word it, see ``query._sql.map_exceptions``).
    """
    with atomic_file(Path(path), overwrite=overwrite) as fh:
        return (write or write_data)(batches, fmt, fh, metadata=metadata)


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
