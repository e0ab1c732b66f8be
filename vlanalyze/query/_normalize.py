"""Turn an export's metadata file into the tidy tables, as Parquet part files.

The work is done by DuckDB: a loader (:mod:`vlanalyze.query._loaders`) turns each batch of
media items into a table with canonical columns (see :mod:`vlanalyze.query._schema`), and the
writer here turns it, as the relation ``src``, into one Parquet part per tidy table
(``<out>/<table>/part-NNNNN.parquet``), while the loader parses the next batch. Memory
is bounded by the batch size, never by the file: a JSON export is cut into batches at
item boundaries (:mod:`vlanalyze.query._jsonchunks`), a Parquet export is read in batches of
rows.

This module writes only inside the folder it is given; making that folder appear
atomically is the cache's job.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from duckdb import DuckDBPyConnection

from vlanalyze._fs import ProgressCallback, atomic_path
from vlanalyze.errors import ExportFormatError
from vlanalyze.query import _schema as schema
from vlanalyze.query import _sql
from vlanalyze.query._jsonchunks import (
    DEFAULT_SIZES,
    ChunkSizes,
    FastPathFailed,
    Prefetched,
    json_chunks,
)
from vlanalyze.query._loaders import Batch, JsonLoader

if TYPE_CHECKING:
    from vlanalyze.query._parquetload import ParquetLoader
from vlanalyze.query._sql import quote_ident, quote_literal

# Rows per Parquet batch: memory grows with it (about 1 GB peak at 20,000 rows of
# synthetic items, 2 GB at 100,000) while speed hardly changes.
PARQUET_BATCH_ROWS = 20_000
# Cache parts are written without dictionary pages: most text columns (ids, paths, urls)
# are unique, and trying a dictionary first cost 15% of writing media (size +2%).
_PARQUET = "FORMAT parquet, DICTIONARY_SIZE_LIMIT 1"


@dataclass(frozen=True)
class Normalized:
    """What a normalization found: the file's top level (without the items), and the
    row count of each table it wrote."""

    top_level: dict[str, Any]
    counts: dict[str, int]


def connect(work_dir: Path | None = None, *, memory_limit: str = "1GB") -> DuckDBPyConnection:
    """The normalizer's DuckDB connection: quiet, spilling to ``work_dir`` if it must."""
    temp = None if work_dir is None else work_dir / "duckdb-tmp"
    return _sql.connect(memory_limit=memory_limit, temp_dir=temp)


class _Writer:
    """Writes one Parquet part per tidy table for each batch held in ``src``."""

    def __init__(self, con: DuckDBPyConnection, out: Path) -> None:
        self.con = con
        self.out = out
        self.part = 0
        self.extras: list[str] = []  # unknown media keys, in column order
        self.part_extras: list[int] = []  # how many of them each media part has
        self.other_parts = 0
        self.counts = dict.fromkeys(("media", *schema.TIDY_SQL, "other_metadata"), 0)
        for table in ("media", *schema.TIDY_SQL, "other_metadata"):
            (out / table).mkdir(parents=True, exist_ok=True)

    def write_batch(
        self, extras: list[str], raw_items: Callable[[], list[tuple[str, Any]]]
    ) -> None:
        name = f"part-{self.part:05d}.parquet"
        self.con.execute(schema.ITEMS_SQL)
        queries = {"media": schema.media_sql(extras), **schema.TIDY_SQL}
        for table, sql in queries.items():
            target = (self.out / table / name).as_posix()
            copy = f"COPY ({sql}) TO {quote_literal(target)} ({_PARQUET})"
            self.counts[table] += int(self.con.execute(copy).fetchall()[0][0])
        unknown = self.con.execute(schema.UNKNOWN_TYPES_SQL).fetchall()[0][0]
        if unknown:
            self._write_other(list(_other_metadata(raw_items())))
        self.extras = extras
        self.part_extras.append(len(extras))
        self.part += 1

    def finish(self) -> None:
        """Give every media part the same columns, and write other_metadata."""
        names = schema.extra_names(self.extras)
        for part, count in enumerate(self.part_extras):
            if count < len(names):
                self._pad_media(part, names[count:])
        if self.other_parts == 0:
            self._write_other([])

    def _write_other(self, rows: list[dict[str, Any]]) -> None:
        """A part of ``other_metadata``: items of unknown types (rare, so written apart).

        Written by DuckDB from list parameters (pyarrow would import pandas, if present,
        for its first array: a fifth of a second).
        """
        target = self.out / "other_metadata" / f"part-{self.other_parts:05d}.parquet"
        columns = [[r[k] for r in rows] for k in ("media_id", "type", "properties")]
        self.con.execute(
            "COPY (SELECT unnest(?::VARCHAR[]) AS media_id, unnest(?::VARCHAR[]) AS type, "
            f"unnest(?::VARCHAR[]) AS properties) TO {quote_literal(target.as_posix())} "
            "(FORMAT parquet)",
            columns,
        )
        self.other_parts += 1
        self.counts["other_metadata"] += len(rows)

    def _pad_media(self, part: int, missing: list[str]) -> None:
        """Add NULL columns for keys first seen in a later batch to an earlier part."""
        path = self.out / "media" / f"part-{part:05d}.parquet"
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {quote_ident(k)}" for k in missing)
        with atomic_path(path, overwrite=True) as tmp:
            self.con.execute(
                f"COPY (SELECT *, {nulls} FROM read_parquet(?)) "
                f"TO {quote_literal(tmp.as_posix())} (FORMAT parquet)",
                [path.as_posix()],
            )


def _other_metadata(rows: list[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
    """Metadata items of unknown types, with their properties as canonical JSON text."""
    for media_id, item in rows:
        if item is None or item.get("type") in schema.KNOWN_ITEM_TYPES:
            continue
        props = item.get("properties")
        if isinstance(props, str):
            props = json.loads(props)
        if isinstance(props, dict):
            props = {k: v for k, v in props.items() if v is not None}
        yield {
            "media_id": media_id,
            "type": item.get("type"),
            "properties": json.dumps(props, sort_keys=True, default=str),
        }


def _run(
    con: DuckDBPyConnection,
    loader: JsonLoader | ParquetLoader,
    out: Path,
    on_progress: ProgressCallback | None,
) -> dict[str, int]:
    """Load batches on the loader's connection while the writer writes the previous one;
    return the row count of each table written.

    Each step alone leaves a core idle part of the time; with one DuckDB thread per
    statement, a parse and a write at once measured 10% faster, with less CPU and
    memory, than one statement at a time with two threads.
    """
    con.execute("SET threads = 1")
    writer = _Writer(con, out)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(loader.load_next)
        while (batch := pending.result()) is not None:
            pending = pool.submit(loader.load_next)
            _write(con, writer, batch)
            if on_progress:
                on_progress(batch.done, loader.total)
    if writer.part == 0:  # an export without items still gets its (empty) tables
        _write(con, writer, loader.empty())
    writer.finish()
    return writer.counts


def _write(con: DuckDBPyConnection, writer: _Writer, batch: Batch) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {batch.table}")
    writer.write_batch(batch.extras, partial(batch.raw_items, con))
    con.execute(f"DROP VIEW src; DROP TABLE {batch.table}")
    batch.cleanup()


def normalize_json(
    path: Path,
    out: Path,
    *,
    on_progress: ProgressCallback | None = None,
    sizes: ChunkSizes = DEFAULT_SIZES,
) -> Normalized:
    """Write the tidy tables of a ``metadata.json`` into ``out``."""
    try:
        return _normalize_json(path, out, exact=False, on_progress=on_progress, sizes=sizes)
    except FastPathFailed:
        for child in out.iterdir():  # our own build folder: start it again
            if child == path or path.is_relative_to(child):
                continue  # but keep the metadata it holds (a copy out of a ZIP)
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        return _normalize_json(path, out, exact=True, on_progress=on_progress, sizes=sizes)


def _normalize_json(
    path: Path, out: Path, *, exact: bool, on_progress: ProgressCallback | None, sizes: ChunkSizes
) -> Normalized:
    chunks = json_chunks(path, work_dir=out, exact=exact, sizes=sizes, lead=schema.SAMPLE_ITEM)
    with (
        closing(Prefetched(chunks)) as ahead,
        closing(connect(out)) as con,
        closing(con.cursor()) as load_con,
    ):
        counts = _run(con, JsonLoader(load_con, path, ahead), out, on_progress)
    return Normalized(chunks.top_level, counts)


def normalize_parquet(
    path: Path,
    out: Path,
    *,
    on_progress: ProgressCallback | None = None,
    sizes: ChunkSizes = DEFAULT_SIZES,
) -> Normalized:
    """Write the tidy tables of a ``metadata.parquet`` into ``out``.

    ``sizes`` is for JSON only (accepted so that both forms are called alike).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vlanalyze.query._parquetload import ParquetLoader, parquet_top_level

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ExportFormatError(
            f"{path}: not a readable Parquet file ({exc})",
            hint="download the export again",
        ) from None
    with closing(pf), closing(connect(out)) as con, closing(con.cursor()) as load_con:
        loader = ParquetLoader(load_con, pf, path, rows=PARQUET_BATCH_ROWS)
        try:
            counts = _run(con, loader, out, on_progress)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if _sql.is_fault(exc):
                raise  # the machine's fault, not the file's: said by the caller
            message = str(exc).strip().splitlines()[0]
            what = "metadata_items is not valid JSON" if "JSON" in message else "unreadable data"
            raise ExportFormatError(
                f"{path}: {what} ({message})", hint="download the export again"
            ) from None
        return Normalized(parquet_top_level(pf), counts)
