"""Write the record of a materialize run: what lets a later run tell its files from a user's.

``OUT/vlanalyze-materialize.json`` (the run: export, selection, parameters, counts) and
``OUT/vlanalyze-materialize-files.parquet`` (every file runs wrote: path, bytes; -1 when
not known) are written before the first image (``in-progress``) and at the end
(``complete``), each only when its content changed. :mod:`vlanalyze.materialize._state`
reads them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze._fs import write_bytes_atomic
from vlanalyze.materialize._plan import Plan
from vlanalyze.materialize._state import FILES_FILE, MANIFEST_FILE, RECORD_FILE, write_error

__all__ = [
    "FilesTable",
    "begin",
    "differs",
    "files_of",
    "files_table",
    "merged",
    "write_record",
    "writing",
]


def begin(plan: Plan, files: pl.DataFrame | None = None) -> bool:
    """Record, before any image is written, every file ``plan`` will write (status
    ``in-progress``): what lets a later run tell its own files from a user's. True when
    the record changed."""
    if files is None:
        files = files_of(plan.table, plan, -1)
    listed = files_table(merged(plan.previous, _unsettled(files, plan.previous)))
    return write_record(plan.out, plan, listed, status="in-progress")


def _unsettled(files: pl.DataFrame, previous: dict[str, int]) -> pl.DataFrame:
    """``files`` as recorded while a run writes them: one an earlier run recorded at
    another size has either size until it is rewritten (-1: not known), so a run killed
    before it rewrote the file leaves no file of its own that looks edited by someone."""
    if not previous:
        return files
    before = pl.DataFrame({"path": list(previous), "bytes": list(previous.values())},
                          _FILES_SCHEMA).rename({"bytes": "before"})  # fmt: skip
    same = pl.col("before").is_null() | (pl.col("before") == pl.col("bytes"))
    return files.join(before, on="path", how="left", maintain_order="left").select(
        "path", bytes=pl.when(same).then(pl.col("bytes")).otherwise(-1)
    )


_FILES_SCHEMA = {"path": pl.String, "bytes": pl.Int64}


def files_of(table: pl.DataFrame, plan: Plan, manifest_bytes: int) -> pl.DataFrame:
    """The files (path, bytes; -1: not known) that applying ``table`` writes."""
    images = table.filter(pl.col("dest").is_not_null())
    images = images.select(path="dest", bytes=pl.col("bytes").fill_null(-1))
    layout = [*plan.side_files, MANIFEST_FILE]
    sizes = [*(len(data) for data in plan.side_files.values()), manifest_bytes]
    return pl.concat([images, pl.DataFrame({"path": layout, "bytes": sizes}, _FILES_SCHEMA)])


def merged(old: dict[str, int], files: pl.DataFrame) -> pl.DataFrame:
    """``files`` and the ``old`` ones (a path in both takes its size in ``files``),
    sorted by path."""
    if old:
        before = pl.DataFrame({"path": list(old), "bytes": list(old.values())}, _FILES_SCHEMA)
        files = pl.concat([before, files]).unique("path", keep="last")
    return files.sort("path")


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
