"""Write a query's result in a format DuckDB writes itself (CSV, TSV, JSON, NDJSON,
Parquet), to a stream or, atomically, to a file.

The light path for the shell: no polars, no pyarrow (see
:mod:`vlanalyze.query._copyout`). Files are written as :mod:`._output` writes them: a
temporary sibling renamed into place, never replacing a file unless ``overwrite``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from vlanalyze._fs import atomic_file
from vlanalyze.errors import MaterializeError

if TYPE_CHECKING:
    from vlanalyze.query._export import Export

#: The formats written by DuckDB (the same as vlanalyze.query._copyout.COPY_OPTIONS).
DIRECT_FORMATS = ("csv", "tsv", "json", "ndjson", "parquet")


def write_result(
    export: Export,
    query: str,
    fmt: str,
    target: BinaryIO | str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> int:
    """Run ``query`` on ``export`` and write its result as ``fmt`` to ``target``.

    Args:
        export: The opened export.
        query: The SQL (``$name`` placeholders bound from ``params``).
        fmt: One of :data:`DIRECT_FORMATS`.
        target: A binary stream, or the path of a file to write atomically.
        params: Values for the placeholders.
        overwrite: Replace ``target`` if it is a file that exists.

    Returns:
        The number of rows written.

    Raises:
        MaterializeError: the file exists (and not ``overwrite``) or cannot be written.
        QueryError: the query is invalid.
    """
    if not isinstance(target, (str, os.PathLike)):
        return _write(export, query, fmt, target, params)
    path = Path(target)
    try:
        with atomic_file(path, overwrite=overwrite) as fh:
            return _write(export, query, fmt, fh, params)
    except OSError as exc:
        raise MaterializeError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write(
    export: Export, query: str, fmt: str, out: BinaryIO, params: Mapping[str, Any] | None
) -> int:
    rows = export.copy_sql(query, out, fmt=fmt, params=params)
    if rows is None:  # intervals: written as the polars path writes them
        from vlanalyze.materialize._output import render

        return render(export.sql_batches(query, params), fmt, out)
    return rows
