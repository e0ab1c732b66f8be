"""Write an export's tidy tables as plain Parquet files, one per table, for any engine.

Each file is written to a temporary name in the target folder and renamed when
complete; existing files are never replaced unless the caller says so, and nothing
outside the target folder is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from vlanalyze._fs import atomic_path
from vlanalyze.errors import Fix, MaterializeError
from vlanalyze.query import _schema as schema
from vlanalyze.query._export import Export
from vlanalyze.query._sql import Doing, map_exceptions


def convert(
    export: Export,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    on_table: Callable[[str, Path], None] | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<table>.parquet`` for every table of ``export``.

    Args:
        export: the opened export.
        out_dir: the target folder (created if missing).
        overwrite: replace table files that already exist there.
        on_table: called with each table's name and path once it is written.

    Returns:
        The paths written, in table order.

    Raises:
        MaterializeError: a target file exists (without ``overwrite``) or cannot be written.
    """
    out = Path(out_dir)
    targets = {t: out / f"{t}.parquet" for t in schema.TABLES}
    existing = [p.name for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise MaterializeError(
            f"{out} already holds {', '.join(existing)}",
            fix=Fix("overwrite", "to replace them, or choose another folder"),
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MaterializeError(f"cannot create {out}: {exc.strerror}") from None
    doing = Doing(
        f"writing {out}", error=MaterializeError, space_hint="free disk space, or write elsewhere"
    )
    with map_exceptions(doing), export.duckdb() as con:
        for table, target in targets.items():
            try:
                with atomic_path(target, overwrite=overwrite) as tmp:
                    con.execute(f"COPY (SELECT * FROM {table}) TO ? (FORMAT parquet)", [str(tmp)])
            except OSError as exc:
                raise MaterializeError(f"cannot write {target}: {exc.strerror or exc}") from None
            if on_table:
                on_table(table, target)
    return list(targets.values())
