"""Render a result table in one of the output formats, to a stream or a file.

Files are written atomically (a temporary sibling, then a rename) and never replace
an existing file unless ``overwrite`` is given. Nothing here prints: the caller passes
the stream.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import polars as pl

from vlanalyze.errors import MaterializeError

FORMATS = ("table", "csv", "tsv", "json", "ndjson", "parquet", "markdown")
BINARY_FORMATS = ("parquet",)


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """Nested columns as JSON text, for the text formats that cannot hold them."""
    nested = [
        name
        for name, dtype in df.schema.items()
        if isinstance(dtype, (pl.List, pl.Struct, pl.Array))
    ]
    if not nested:
        return df
    return df.with_columns(
        pl.struct(pl.col(n).alias("v")).struct.json_encode().str.slice(5).str.head(-1).alias(n)
        for n in nested
    )


def render(df: pl.DataFrame, fmt: str, out: BinaryIO) -> None:
    """Write ``df`` to the binary stream ``out`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        df.write_parquet(out)
    elif fmt == "csv":
        _flatten(df).write_csv(out)
    elif fmt == "tsv":
        _flatten(df).write_csv(out, separator="\t")
    elif fmt == "json":
        out.write(df.write_json().encode())
        out.write(b"\n")
    elif fmt == "ndjson":
        df.write_ndjson(out)
    else:
        out.write(_pretty(df, markdown=fmt == "markdown").encode())
        out.write(b"\n")


def _pretty(df: pl.DataFrame, *, markdown: bool) -> str:
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=120,
        tbl_width_chars=10_000,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=markdown,
        tbl_formatting="MARKDOWN" if markdown else "UTF8_FULL_CONDENSED",
    ):
        return str(df)


def write_file(
    df: pl.DataFrame, fmt: str, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``df`` to ``path`` atomically; refuse to replace a file unless ``overwrite``.

    Raises:
        MaterializeError: ``path`` exists (and ``overwrite`` is false) or cannot be written.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise MaterializeError(f"{target} already exists", hint="pass --force to replace it")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent or "."
        )
    except OSError as exc:
        raise MaterializeError(f"cannot write {target}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            render(df, fmt, fh)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def render_bytes(df: pl.DataFrame, fmt: str) -> bytes:
    """``df`` in format ``fmt`` as bytes."""
    buf = io.BytesIO()
    render(df, fmt, buf)
    return buf.getvalue()
