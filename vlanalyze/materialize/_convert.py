"""Write an export's tidy tables as plain Parquet files, one per table, for any engine.

Every table is first written into a hidden folder beside the target, and put in place
only when all are complete (one rename of the folder when the target is new or empty),
so a killed run leaves no target folder with some tables missing. Existing files are
never replaced unless the caller says so, and nothing outside the target is touched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from vlanalyze._fs import ensure_absent, ensure_empty_folder, make_temp_folder, replace_folder
from vlanalyze.errors import Fix, MaterializeError
from vlanalyze.query import _schema as schema
from vlanalyze.query._export import Export
from vlanalyze.query._sql import Doing, map_exceptions, quote_ident


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
    doing = Doing(
        f"writing {out}", error=MaterializeError, space_hint="free disk space, or write elsewhere"
    )
    try:
        tmp = make_temp_folder(out)
    except OSError as exc:
        raise MaterializeError(f"cannot create {out}: {exc.strerror}") from None
    try:
        with map_exceptions(doing):
            _write_tables(export, tmp, list(targets))
            _publish(tmp, out, list(targets.values()), overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if on_table:
        for table, target in targets.items():
            on_table(table, target)
    return list(targets.values())


def _write_tables(export: Export, folder: Path, tables: list[str]) -> None:
    """``<folder>/<table>.parquet`` for each table (built aside: see the module doc)."""
    with export.duckdb() as con:
        for table in tables:
            sql = f"COPY (SELECT * FROM {quote_ident(table)}) TO ? (FORMAT parquet)"
            con.execute(sql, [(folder / f"{table}.parquet").as_posix()])


def _publish(tmp: Path, out: Path, targets: list[Path], *, overwrite: bool) -> None:
    """Put the complete tables at ``out``: the whole folder by one rename when ``out`` is
    new or empty, else table by table (renames only) beside the files already there."""
    if ensure_empty_folder(out, overwrite=True):
        replace_folder(tmp, out, overwrite=False)
        return
    for target in targets:
        ensure_absent(target, overwrite=overwrite)
        os.replace(tmp / target.name, target)
    tmp.rmdir()
