"""Write a selection's rows to a file: streamed batch by batch, atomically.

The data formats only (csv, tsv, json, ndjson, parquet); screen formats are the CLI's.
The curate layer does not import :mod:`vlanalyze.materialize`, so this is its own small
writer over :func:`vlanalyze._fs.atomic_file`; it never prints.
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

FILE_FORMATS = ("csv", "tsv", "json", "ndjson", "parquet")


def write_batches(
    batches: Iterable[pl.DataFrame],
    fmt: str,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``batches`` (one table, in pieces) to ``path`` as ``fmt``; the number of rows.

    ``metadata`` goes into a Parquet file's key-value metadata.

    Raises:
        MaterializeError: ``path`` exists (without ``overwrite``) or cannot be written.
    """
    if fmt not in FILE_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FILE_FORMATS)}")
    target = Path(path)
    try:
        with atomic_file(target, overwrite=overwrite) as fh:
            if fmt == "parquet":
                return _parquet(batches, fh, metadata or {})
            return _text(batches, fmt, fh)
    except OSError as exc:
        raise MaterializeError(f"cannot write {target}: {exc.strerror or exc}") from None


def _text(batches: Iterable[pl.DataFrame], fmt: str, out: BinaryIO) -> int:
    rows = 0
    if fmt == "json":
        out.write(b"[")
    for df in batches:
        if fmt == "json":
            body = df.write_json().strip()[1:-1]
            if body:
                out.write((b"," if rows else b"") + body.encode())
        elif fmt == "ndjson":
            df.write_ndjson(out)
        else:
            df.write_csv(out, separator="," if fmt == "csv" else "\t", include_header=rows == 0)
        rows += df.height
    if fmt == "json":
        out.write(b"]\n")
    return rows


def _parquet(batches: Iterable[pl.DataFrame], out: BinaryIO, metadata: Mapping[str, str]) -> int:
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for df in batches:
            table = df.to_arrow().replace_schema_metadata(dict(metadata))
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += df.height
    finally:
        if writer is not None:
            writer.close()
    return rows
