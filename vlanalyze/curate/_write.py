"""Write a selection's rows to a file: streamed batch by batch, atomically.

The data formats only (:data:`vlanalyze._tablefile.DATA_FORMATS`); screen formats are
the CLI's. It never prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from vlanalyze._fs import atomic_file
from vlanalyze._tablefile import write_data
from vlanalyze.errors import MaterializeError


def write_batches(
    batches: Iterable[pl.DataFrame],
    fmt: str,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``batches`` (one table, in pieces) to ``path`` as ``fmt``; the number of rows.

    Raises:
        MaterializeError: ``path`` exists (without ``overwrite``) or cannot be written.
    """
    target = Path(path)
    try:
        with atomic_file(target, overwrite=overwrite) as fh:
            return write_data(batches, fmt, fh, metadata=metadata)
    except OSError as exc:
        raise MaterializeError(f"cannot write {target}: {exc.strerror or exc}") from None
