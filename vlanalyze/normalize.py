"""Turn an export's metadata file into the tidy tables, as Parquet part files.

The work is done by DuckDB: each batch of media items becomes one relation ``src``
with canonical columns (see :mod:`vlanalyze.schema`), from which every tidy table gets
one Parquet part (``<out>/<table>/part-NNNNN.parquet``). Memory is bounded by the batch
size, never by the file: a JSON export is cut into batches at item boundaries
(:mod:`vlanalyze._jsonchunks`), a Parquet export is read row group by row group.

This module writes only inside the folder it is given; making that folder appear
atomically is the cache's job.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vlanalyze import schema
from vlanalyze._jsonchunks import Chunk, FastPathFailed, json_chunks
from vlanalyze.errors import ExportFormatError

ProgressCallback = Callable[[int, int], None]

PARQUET_BATCH_ROWS = 100_000
_RAW_ITEMS = {"media_id": "VARCHAR", "metadata_items": "STRUCT(type VARCHAR, properties JSON)[]"}


def connect(
    work_dir: Path | None = None, *, memory_limit: str = "1GB"
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that prints nothing and spills to ``work_dir`` if it must."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if work_dir is not None:
        con.execute("SET temp_directory = ?", [str(work_dir / "duckdb-tmp")])
    return con


class _Writer:
    """Writes one Parquet part per tidy table for each batch held in ``src``."""

    def __init__(self, con: duckdb.DuckDBPyConnection, out: Path) -> None:
        self.con = con
        self.out = out
        self.part = 0
        self.extras: list[str] = []  # unknown media keys, in column order
        self.part_extras: list[int] = []  # how many of them each media part has
        self.other_parts = 0
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
            self.con.execute(f"COPY ({sql}) TO '{_quote(target)}' (FORMAT parquet)")
        unknown = self.con.execute(schema.UNKNOWN_TYPES_SQL).fetchall()[0][0]
        if unknown:
            self._write_other(list(_other_metadata(raw_items())))
        self.extras = extras
        self.part_extras.append(len(extras))
        self.part += 1

    def finish(self) -> None:
        """Give every media part the same columns, and write other_metadata."""
        for part, count in enumerate(self.part_extras):
            if count < len(self.extras):
                self._pad_media(part, self.extras[count:])
        if self.other_parts == 0:
            self._write_other([])

    def _write_other(self, rows: list[dict[str, Any]]) -> None:
        """A part of ``other_metadata``: items of unknown types (rare, so written apart)."""
        table = pa.table(
            {
                "media_id": pa.array([r["media_id"] for r in rows], pa.string()),
                "type": pa.array([r["type"] for r in rows], pa.string()),
                "properties": pa.array([r["properties"] for r in rows], pa.string()),
            }
        )
        pq.write_table(table, self.out / "other_metadata" / f"part-{self.other_parts:05d}.parquet")
        self.other_parts += 1

    def _pad_media(self, part: int, missing: list[str]) -> None:
        """Add NULL columns for keys first seen in a later batch to an earlier part."""
        path = self.out / "media" / f"part-{part:05d}.parquet"
        tmp = path.with_suffix(".tmp")
        nulls = ", ".join(f'CAST(NULL AS VARCHAR) AS "{k}"' for k in missing)
        self.con.execute(
            f"COPY (SELECT *, {nulls} FROM read_parquet('{_quote(path.as_posix())}')) "
            f"TO '{_quote(tmp.as_posix())}' (FORMAT parquet)"
        )
        tmp.replace(path)


def _quote(text: str) -> str:
    return text.replace("'", "''")


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


# ----------------------------------------------------------------------------- JSON


def normalize_json(
    path: Path, out: Path, *, on_progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Write the tidy tables of a ``metadata.json`` into ``out``; return its top level."""
    try:
        return _normalize_json(path, out, exact=False, on_progress=on_progress)
    except FastPathFailed:
        for child in out.iterdir():  # our own build folder: start it again
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        return _normalize_json(path, out, exact=True, on_progress=on_progress)


def _normalize_json(
    path: Path, out: Path, *, exact: bool, on_progress: ProgressCallback | None
) -> dict[str, Any]:
    with closing(connect(out)) as con, ThreadPoolExecutor(1) as pool:
        # One thread per statement, as a parse and a write run at once (one per core):
        # measured 10% faster, with less CPU and memory, than two threads each.
        con.execute("SET threads = 1")
        writer = _Writer(con, out)
        chunks = json_chunks(path, work_dir=out, exact=exact)
        loader = _JsonLoader(con.cursor(), path, _groups(chunks, size=1 if exact else 2))
        total = path.stat().st_size
        # Parse the next batch while this one is written: each step alone leaves a
        # core idle part of the time.
        pending = pool.submit(loader.load_next)
        while (loaded := pending.result()) is not None:
            pending = pool.submit(loader.load_next)
            table, group, extras = loaded
            con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {table}")
            writer.write_batch(extras, partial(_raw_json_items, con, group))
            con.execute(f"DROP VIEW src; DROP TABLE {table}")
            for chunk in group:
                chunk.path.unlink()
            if on_progress:
                on_progress(group[-1].end_offset, total)
        if writer.part == 0:  # an export with no media items still gets its tables
            _load_empty(con)
            writer.write_batch([], list)
        writer.finish()
        return chunks.top_level


class _JsonLoader:
    """Parses groups of chunk files into tables ``batch_<n>``, on its own connection."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, path: Path, groups: Iterator[list[Chunk]]
    ) -> None:
        self.con = con
        self.path = path
        self.groups = groups
        self.extras: list[str] = []
        self.count = 0

    def load_next(self) -> tuple[str, list[Chunk], list[str]] | None:
        group = next(self.groups, None)
        if group is None:
            self.con.close()
            return None
        table = f"batch_{self.count}"
        self.count += 1
        try:
            self.extras = _merge(self.extras, _json_extra_keys(group))
            _load_json_chunks(self.con, table, group, self.extras)
        except duckdb.Error as exc:
            if group[0].item_offsets is None:
                raise FastPathFailed(str(exc)) from None
            raise group[0].locate_error(self.path, exc) from None
        return table, group, self.extras


def _merge(known: list[str], found: list[str]) -> list[str]:
    """``known`` then the new names of ``found``: earlier batches' columns keep their place."""
    return known + [k for k in found if k not in known]


def _groups(chunks: Iterable[Chunk], *, size: int) -> Iterator[list[Chunk]]:
    """Chunks in groups of ``size``: DuckDB reads array files one per thread."""
    group: list[Chunk] = []
    for chunk in chunks:
        group.append(chunk)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _json_extra_keys(group: list[Chunk]) -> list[str]:
    """Unknown top-level keys of the items, read from a sample of each chunk.

    Reading every key exactly would cost a second full parse (a third more time); a key
    carried by only a handful of items of a huge export can be missed.
    """
    known = {*schema.KNOWN_MEDIA_KEYS, "metadata_items"}
    found: set[str] = set()
    for chunk in group:
        found |= chunk.sample_keys()
    return sorted(found - known)


def _load_json_chunks(
    con: duckdb.DuckDBPyConnection, table: str, group: list[Chunk], extras: list[str]
) -> None:
    columns = {**schema.KNOWN_MEDIA_KEYS, "metadata_items": schema.ITEMS_TYPE}
    columns.update({k: "JSON" for k in extras})
    known = ", ".join(f'"{k}"' for k in schema.KNOWN_MEDIA_KEYS)
    extra = "".join(f', json_extract_string("{k}", \'$\') AS "{k}"' for k in extras)
    con.execute(
        f"CREATE TABLE {table} AS SELECT {known}, metadata_items{extra} "
        "FROM read_json(?, format = ?, columns = ?)",
        [[str(c.path) for c in group], group[0].format, columns],
    )


def _raw_json_items(con: duckdb.DuckDBPyConnection, group: list[Chunk]) -> list[tuple[str, Any]]:
    rows = con.execute(
        "SELECT media_id, unnest(metadata_items) FROM read_json(?, format = ?, columns = ?)",
        [[str(c.path) for c in group], group[0].format, _RAW_ITEMS],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _load_empty(con: duckdb.DuckDBPyConnection) -> None:
    cols = ", ".join(f'CAST(NULL AS {t}) AS "{k}"' for k, t in schema.KNOWN_MEDIA_KEYS.items())
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE src AS SELECT {cols}, "
        f"CAST(NULL AS {schema.ITEMS_TYPE}) AS metadata_items LIMIT 0"
    )


# -------------------------------------------------------------------------- Parquet


def normalize_parquet(
    path: Path, out: Path, *, on_progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Write the tidy tables of a ``metadata.parquet`` into ``out``; return its top level."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ExportFormatError(
            f"{path}: not a readable Parquet file ({exc})",
            hint="download the export again",
        ) from None
    with closing(pf), closing(connect(out)) as con:
        try:
            _parquet_batches(pf, con, path, out, on_progress)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            message = str(exc).strip().splitlines()[0]
            what = "metadata_items is not valid JSON" if "JSON" in message else "unreadable data"
            raise ExportFormatError(
                f"{path}: {what} ({message})", hint="download the export again"
            ) from None
        return _parquet_top_level(pf)


def _parquet_batches(
    pf: pq.ParquetFile,
    con: duckdb.DuckDBPyConnection,
    path: Path,
    out: Path,
    on_progress: ProgressCallback | None,
) -> None:
    arrow_schema = pf.schema_arrow
    select, extras = _parquet_select(arrow_schema, path)
    raw_items = partial(_raw_parquet_items, con, _items_text(arrow_schema))
    writer = _Writer(con, out)
    done, total = 0, max(pf.metadata.num_rows, 1)
    batches = pf.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    for table in (pa.Table.from_batches([b]) for b in batches):
        con.register("raw", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE src AS {select} FROM raw")
        writer.write_batch(extras, raw_items)
        con.unregister("raw")
        done += table.num_rows
        if on_progress:
            on_progress(done, total)
    if writer.part == 0:
        con.register("raw", arrow_schema.empty_table())
        con.execute(f"CREATE OR REPLACE TEMP TABLE src AS {select} FROM raw")
        writer.write_batch(extras, list)
    writer.finish()


def _parquet_select(arrow_schema: pa.Schema, path: Path) -> tuple[str, list[str]]:
    """SELECT list mapping a Parquet export's columns onto the canonical ones."""
    names = list(arrow_schema.names)
    if "media_id" not in names:
        raise ExportFormatError(
            f"{path}: no 'media_id' column (columns: {', '.join(names[:12])})",
            hint="this is not a Visual Layer metadata.parquet",
        )
    rename = {"file_name": "image_filename"} if "file_name" not in names else {}
    parts = []
    for key, sql_type in schema.KNOWN_MEDIA_KEYS.items():
        col = rename.get(key, key)
        expr = f'TRY_CAST("{col}" AS {sql_type})' if col in names else f"CAST(NULL AS {sql_type})"
        parts.append(f'{expr} AS "{key}"')
    parts.append(f"{_items_expr(arrow_schema)} AS metadata_items")
    used = {*schema.KNOWN_MEDIA_KEYS, *rename.values(), "metadata_items"}
    extras = [n for n in names if n not in used]
    for name in extras:
        is_text = pa.types.is_string(arrow_schema.field(name).type) or pa.types.is_large_string(
            arrow_schema.field(name).type
        )
        expr = f'"{name}"' if is_text else f'CAST(to_json("{name}") AS VARCHAR)'
        parts.append(f'{expr} AS "{name}"')
    return "SELECT " + ", ".join(parts), extras


def _items_text(arrow_schema: pa.Schema) -> str | None:
    """SQL giving ``metadata_items`` as JSON text, whether stored as text or as structs."""
    if "metadata_items" not in arrow_schema.names:
        return None
    kind = arrow_schema.field("metadata_items").type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "metadata_items"
    # A list of structs whose fields are whatever the writer had: through JSON, so
    # missing fields become NULL and types are the canonical ones.
    return "to_json(metadata_items)"


def _items_expr(arrow_schema: pa.Schema) -> str:
    text = _items_text(arrow_schema)
    if text is None:
        return f"CAST([] AS {schema.ITEMS_TYPE})"
    return f"from_json({text}, '{_quote(schema.ITEMS_STRUCTURE)}')"


def _raw_parquet_items(con: duckdb.DuckDBPyConnection, text: str | None) -> list[tuple[str, Any]]:
    if text is None:
        return []
    rows = con.execute(
        f"SELECT CAST(media_id AS VARCHAR), unnest(from_json({text}, "
        """'[{"type": "VARCHAR", "properties": "JSON"}]')) FROM raw"""
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _parquet_top_level(pf: pq.ParquetFile) -> dict[str, Any]:
    meta = pf.schema_arrow.metadata or {}
    raw = meta.get(b"info")
    if raw is None:
        return {}
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return {"info": info} if isinstance(info, dict) else {}
