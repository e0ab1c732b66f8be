"""Write the record of a materialize run: what lets a later run tell its files from a user's.

``OUT/vlanalyze-materialize.json`` (the run: export, selection, parameters, counts) and
``OUT/vlanalyze-materialize-files.parquet`` (every file runs wrote: path, bytes, mtime_ns)
are written before the first image (``in-progress``) and at the end (``complete``),
each only when its content changed. :mod:`vlanalyze.materialize._state` reads them and
says what the values mean.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze._fs import write_bytes_atomic
from vlanalyze.materialize._plan import Plan
from vlanalyze.materialize._sources import LINK_MODES
from vlanalyze.materialize._state import (
    FILES_FILE,
    LINKED,
    MANIFEST_FILE,
    RECORD_FILE,
    write_error,
)

__all__ = [
    "FilesTable",
    "begin",
    "differs",
    "files_of",
    "files_table",
    "merged",
    "with_mtimes",
    "write_record",
    "writing",
]


def begin(plan: Plan, files: pl.DataFrame | None = None) -> bool:
    """Record, before any image is written, every file ``plan`` will write (status
    ``in-progress``): what lets a later run tell its own files from a user's. True when
    the record changed."""
    if files is None:
        files = files_of(plan.table, plan, -1)
    listed = files_table(merged(plan, plan.previous, _unsettled(files, plan.previous)))
    return write_record(plan.out, plan, listed, status="in-progress")


def _unsettled(files: pl.DataFrame, previous: dict[str, int]) -> pl.DataFrame:
    """``files`` as recorded while a run writes them: one an earlier run recorded at
    another size has either size until it is rewritten (-1: not known), so a run killed
    before it rewrote the file leaves no file of its own that looks edited by someone."""
    if not previous:
        return files
    before = pl.DataFrame(
        {"path": list(previous), "before": list(previous.values())},
        {"path": pl.String, "before": pl.Int64},
    )
    same = pl.col("before").is_null() | (pl.col("before") == pl.col("bytes"))
    return files.join(before, on="path", how="left", maintain_order="left").select(
        "path", bytes=pl.when(same).then(pl.col("bytes")).otherwise(-1), mtime_ns="mtime_ns"
    )


_FILES_SCHEMA = {"path": pl.String, "bytes": pl.Int64, "mtime_ns": pl.Int64}


def files_of(table: pl.DataFrame, plan: Plan, manifest_bytes: int) -> pl.DataFrame:
    """The files (path; bytes, -1: not known, LINKED: a link; mtime_ns, null: not known)
    that applying ``table`` writes. An image the run rewrites, and every layout file, has
    no mtime until it is written (the run's end records it); one it keeps, the
    recorded one."""
    images = table.filter(pl.col("dest").is_not_null())
    size = pl.lit(LINKED, pl.Int64) if plan.mode in LINK_MODES else pl.col("bytes").fill_null(-1)
    kept = pl.col("action") != "write"
    mtime = pl.lit(None, pl.Int64)
    if plan.mtimes and plan.mode not in LINK_MODES:
        carried = pl.col("dest").replace_strict(plan.mtimes, default=None, return_dtype=pl.Int64)
        mtime = pl.when(kept).then(carried)
    images = images.select(path="dest", bytes=size, mtime_ns=mtime)
    layout = [*plan.side_files, MANIFEST_FILE]
    sizes = [*(len(data) for data in plan.side_files.values()), manifest_bytes]
    unknown = [None] * len(layout)
    layout_files = pl.DataFrame(
        {"path": layout, "bytes": sizes, "mtime_ns": unknown}, _FILES_SCHEMA
    )
    return pl.concat([images, layout_files])


def merged(plan: Plan, old: dict[str, int], files: pl.DataFrame) -> pl.DataFrame:
    """``files`` and the ``old`` ones of ``plan.previous`` (a path in both takes its
    size and mtime in ``files``), sorted by path."""
    if old:
        mtimes = [plan.mtimes.get(path) for path in old]
        before = pl.DataFrame(
            {"path": list(old), "bytes": list(old.values()), "mtime_ns": mtimes}, _FILES_SCHEMA
        )
        files = pl.concat([before, files]).unique("path", keep="last")
    return files.sort("path")


def with_mtimes(out: Path, files: pl.DataFrame, paths: list[str]) -> pl.DataFrame:
    """``files`` with the mtime each of ``paths`` (under ``out``) has now."""
    found = {}
    for path in paths:
        try:
            found[path] = os.lstat(out / path).st_mtime_ns
        except OSError:
            continue
    now = pl.col("path").replace_strict(found, default=None, return_dtype=pl.Int64)
    return files.with_columns(mtime_ns=pl.coalesce(now, "mtime_ns"))


def differs(path: Path, data: bytes) -> bool:
    """True unless ``path`` holds exactly ``data``."""
    try:
        return path.read_bytes() != data
    except OSError:
        return True


FilesTable = tuple[pl.DataFrame, bytes]  # the files a record lists, and as Parquet


def files_table(files: pl.DataFrame) -> FilesTable:
    """``files`` and their Parquet form, the record's files table."""
    sink = io.BytesIO()
    files.write_parquet(sink, statistics=False)
    return files, sink.getvalue()


def write_record(out: Path, plan: Plan, listed: FilesTable, *, status: str) -> bool:
    """Write the record's JSON and files table (``listed``) where they changed; True
    when either did."""
    images = plan.table.filter(pl.col("dest").is_not_null())
    record: dict[str, Any] = {
        **plan.record,
        "status": status,
        "counts": {
            "items": plan.table.height,
            "images": images.height,
            "image_bytes": int(images["bytes"].fill_null(0).sum()),
            "side_files": len(plan.side_files),
        },
        "files_table": FILES_FILE,
        "files_count": listed[0].height,
    }
    data = (json.dumps(record, default=str, indent=1) + "\n").encode("utf-8")
    # The JSON first: until the table is written, the one on disk lists at least every
    # file there (this run writes nothing before both are written).
    wrote = False
    for name, content in ((RECORD_FILE, data), (FILES_FILE, listed[1])):
        if differs(out / name, content):
            wrote = True
            with writing(out / name):
                out.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(out / name, content, overwrite=True, clean=False)
    return wrote


_OUT_HINT = "choose an output folder you can write to"


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Word an OSError of writing ``path`` (or in it, for a folder) as a MaterializeError."""
    try:
        yield
    except OSError as exc:
        raise write_error(path, exc, _OUT_HINT) from exc
