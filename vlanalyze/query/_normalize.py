"""Turn an export's metadata file into the tidy tables, as Parquet part files.

The work is done by DuckDB, on two workers that each take the next batch: the loader
(:mod:`vlanalyze.query._loaders`) turns a batch of media items into a table with canonical
columns (see :mod:`vlanalyze.query._schema`), and the writer here turns that, as the
relation ``src``, into one Parquet part per tidy table (``<out>/<table>/part-NNNNN.parquet``).
Memory is bounded by the batch size, never by the file: a JSON export is cut into batches at
item boundaries (:mod:`vlanalyze.query._jsonchunks`), a Parquet export is read in batches of
rows.

This module writes only inside the folder it is given; making that folder appear
atomically is the cache's job.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
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
    """Writes one Parquet part per tidy table for each batch held in ``src`` (on the
    connection it is given: each worker writes its own batches)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.part_extras: dict[int, int] = {}  # how many unknown media keys each part has
        self.other_parts = 0
        self.counts = dict.fromkeys(("media", *schema.TIDY_SQL, "other_metadata"), 0)
        self.lock = threading.Lock()
        for table in ("media", *schema.TIDY_SQL, "other_metadata"):
            (out / table).mkdir(parents=True, exist_ok=True)

    def write_batch(self, con: DuckDBPyConnection, part: int, extras: list[str]) -> None:
        name = f"part-{part:05d}.parquet"
        con.execute(schema.ITEMS_SQL)
        queries = {"media": schema.media_sql(extras), **schema.TIDY_SQL}
        counts = {}
        for table, sql in queries.items():
            target = (self.out / table / name).as_posix()
            copy = f"COPY ({sql}) TO {quote_literal(target)} ({_PARQUET})"
            counts[table] = int(con.execute(copy).fetchall()[0][0])
        unknown = con.execute(schema.UNKNOWN_TYPES_SQL).fetchall()[0][0]
        rows = list(_other_metadata(con.execute(_RAW_ITEMS).fetchall())) if unknown else []
        with self.lock:
            for table, count in counts.items():
                self.counts[table] += count
            self.part_extras[part] = len(extras)
            if rows:
                self._write_other(con, rows)

    def finish(self, con: DuckDBPyConnection, extras: list[str]) -> None:
        """Give every media part the columns of all of ``extras`` (the unknown media keys,
        in column order), and write other_metadata."""
        names = schema.extra_names(extras)
        for part, count in sorted(self.part_extras.items()):
            if count < len(names):
                self._pad_media(con, part, names[count:])
        if self.other_parts == 0:
            self._write_other(con, [])

    def _write_other(self, con: DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
        """A part of ``other_metadata``: items of unknown types (rare, so written apart).

        Written by DuckDB from list parameters (pyarrow would import pandas, if present,
        for its first array: a fifth of a second).
        """
        target = self.out / "other_metadata" / f"part-{self.other_parts:05d}.parquet"
        columns = [[r[k] for r in rows] for k in ("media_id", "type", "properties")]
        con.execute(
            "COPY (SELECT unnest(?::VARCHAR[]) AS media_id, unnest(?::VARCHAR[]) AS type, "
            f"unnest(?::VARCHAR[]) AS properties) TO {quote_literal(target.as_posix())} "
            "(FORMAT parquet)",
            columns,
        )
        self.other_parts += 1
        self.counts["other_metadata"] += len(rows)

    def _pad_media(self, con: DuckDBPyConnection, part: int, missing: list[str]) -> None:
        """Add NULL columns for keys first seen in a later batch to an earlier part."""
        path = self.out / "media" / f"part-{part:05d}.parquet"
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {quote_ident(k)}" for k in missing)
        with atomic_path(path, overwrite=True) as tmp:
            con.execute(
                f"COPY (SELECT *, {nulls} FROM read_parquet(?)) "
                f"TO {quote_literal(tmp.as_posix())} (FORMAT parquet)",
                [path.as_posix()],
            )


# A batch's metadata items as they were read (properties as JSON text): for the rare
# items of unknown types.
_RAW_ITEMS = "SELECT media_id, unnest(metadata_items) FROM src"


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
    """Load and write every batch, on two workers (this thread and one more, each with
    its own connection, one DuckDB thread each); return the row count of each table.

    Each worker loads a batch and writes it while the other does the same with the next:
    as a pipeline (one loading, one writing) half the work waited on the slower half.
    """
    con.execute("SET threads = 1")
    writer = _Writer(out)
    run = _Workers(loader, writer, on_progress)
    with closing(con.cursor()) as other, ThreadPoolExecutor(1) as pool:
        helper = pool.submit(run.work, other)
        run.work(con)
        helper.result()
    run.raise_first()
    if not writer.part_extras:  # an export without items still gets its (empty) tables
        _write(con, writer, 0, loader.empty(con))
    writer.finish(con, loader.extras)
    return writer.counts


class _Workers:
    """What the two workers of :func:`_run` share: the loader (its tickets taken under a
    lock), the writer, progress, and the first failure, which stops both."""

    def __init__(
        self,
        loader: JsonLoader | ParquetLoader,
        writer: _Writer,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.loader = loader
        self.writer = writer
        self.on_progress = on_progress
        self.lock = threading.Lock()
        self.done = 0
        self.errors: list[tuple[int, BaseException]] = []

    def work(self, con: DuckDBPyConnection) -> None:
        """Load and write batches until there are none left, or a worker failed."""
        while True:
            with self.lock:
                index = self.loader.count  # the batch being taken (for ordering failures)
                try:
                    ticket = None if self.errors else self.loader.take()
                except BaseException as exc:  # the chunker's own error
                    self.errors.append((index, exc))
                    return
            if ticket is None:
                return
            try:
                batch = self.loader.load(con, ticket)
                _write(con, self.writer, ticket.index, batch)
                with self.lock:
                    self.done = max(self.done, batch.done)  # never backwards
                    if self.on_progress:
                        self.on_progress(self.done, self.loader.total)
            except BaseException as exc:  # the other worker stops too; raise_first says it
                with self.lock:
                    self.errors.append((ticket.index, exc))
                return

    def raise_first(self) -> None:
        """Raise the failure of the earliest batch in the file, if any."""
        if self.errors:
            raise min(self.errors, key=lambda e: e[0])[1]


def _write(con: DuckDBPyConnection, writer: _Writer, part: int, batch: Batch) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {batch.table}")
    writer.write_batch(con, part, batch.extras)
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
    ):
        counts = _run(con, JsonLoader(path, ahead), out, on_progress)
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
    with closing(pf), closing(connect(out)) as con:
        loader = ParquetLoader(pf, path, rows=PARQUET_BATCH_ROWS)
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
