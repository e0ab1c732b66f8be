"""Loaders of the normalizer: each turns its source into DuckDB tables of canonical
batches (``batch_<n>``: the known media columns, unknown keys, and ``metadata_items``
typed as :data:`vlanalyze.query._schema.ITEMS_TYPE`).

A loader runs on its own DuckDB connection, in a worker thread, while the writer
(:mod:`vlanalyze.query._normalize`) turns the previous batch into Parquet. It writes no file
but the JSON chunk files it is handed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vlanalyze.errors import ExportFormatError
from vlanalyze.query import _schema as schema
from vlanalyze.query._jsonchunks import Chunk, FastPathFailed

RawItems = list[tuple[str, Any]]
_RAW_STRUCTURE = """'[{"type": "VARCHAR", "properties": "JSON"}]'"""
_RAW_ITEMS = {"media_id": "VARCHAR", "metadata_items": "STRUCT(type VARCHAR, properties JSON)[]"}


@dataclass
class Batch:
    """One loaded batch: its table, and how to reach its raw items (for unknown types)."""

    table: str
    extras: list[str]  # unknown top-level keys, as columns of the table
    raw_items: Callable[[duckdb.DuckDBPyConnection], RawItems]
    done: int  # progress after this batch
    cleanup: Callable[[], None] = lambda: None


def _empty_items_select(extras: list[str]) -> str:
    cols = ", ".join(f'CAST(NULL AS {t}) AS "{k}"' for k, t in schema.KNOWN_MEDIA_KEYS.items())
    extra = "".join(f', CAST(NULL AS VARCHAR) AS "{k}"' for k in extras)
    return f"SELECT {cols}, CAST(NULL AS {schema.ITEMS_TYPE}) AS metadata_items{extra} LIMIT 0"


class JsonLoader:
    """Parses groups of JSON chunk files (see :mod:`vlanalyze.query._jsonchunks`)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, path: Path, chunks: Iterable[Chunk], *, group: int
    ) -> None:
        self.con = con
        self.path = path
        self.groups = _groups(chunks, size=group)
        self.total = path.stat().st_size
        self.extras: list[str] = []
        self.count = 0

    def load_next(self) -> Batch | None:
        """Parse the next group of chunks into a table; None at the end."""
        group = next(self.groups, None)
        if group is None:
            return None
        table = f"batch_{self.count}"
        self.count += 1
        files = [str(c.path) for c in group]
        try:
            self.extras = _merge(self.extras, _json_extra_keys(group))
            _load_json(self.con, table, files, group[0].format, self.extras)
        except duckdb.Error as exc:
            if group[0].item_offsets is None:
                raise FastPathFailed(str(exc)) from None
            raise group[0].locate_error(self.path, exc) from None
        return Batch(
            table,
            self.extras,
            lambda con: _raw_json_items(con, files, group[0].format),
            group[-1].end_offset,
            lambda: _unlink(group),
        )

    def empty(self) -> Batch:
        """An empty batch, so an export without items still gets its tables."""
        self.con.execute(f"CREATE TABLE batch_empty AS {_empty_items_select([])}")
        return Batch("batch_empty", [], lambda con: [], 0)


def _unlink(group: list[Chunk]) -> None:
    for chunk in group:
        chunk.path.unlink()


def _merge(known: list[str], found: list[str]) -> list[str]:
    """``known`` then the new names of ``found``: earlier batches' columns keep their place."""
    return known + [k for k in found if k not in known]


def _groups(chunks: Iterable[Chunk], *, size: int) -> Iterator[list[Chunk]]:
    """Chunks in groups of ``size``, read by one statement."""
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


def _load_json(
    con: duckdb.DuckDBPyConnection, table: str, files: list[str], fmt: str, extras: list[str]
) -> None:
    columns = {**schema.KNOWN_MEDIA_KEYS, "metadata_items": schema.ITEMS_TYPE}
    columns.update({k: "JSON" for k in extras})
    known = ", ".join(f'"{k}"' for k in schema.KNOWN_MEDIA_KEYS)
    extra = "".join(f', json_extract_string("{k}", \'$\') AS "{k}"' for k in extras)
    con.execute(
        f"CREATE TABLE {table} AS SELECT {known}, metadata_items{extra} "
        "FROM read_json(?, format = ?, columns = ?)",
        [files, fmt, columns],
    )


def _raw_json_items(con: duckdb.DuckDBPyConnection, files: list[str], fmt: str) -> RawItems:
    rows = con.execute(
        "SELECT media_id, unnest(metadata_items) FROM read_json(?, format = ?, columns = ?)",
        [files, fmt, _RAW_ITEMS],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


class ParquetLoader:
    """Reads a ``metadata.parquet`` in batches of rows, mapped onto the canonical columns."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, pf: pq.ParquetFile, path: Path, *, rows: int
    ) -> None:
        self.con = con
        self.select, self.extras = parquet_select(pf.schema_arrow, path)
        self.text = _items_text(pf.schema_arrow)
        self.batches = pf.iter_batches(batch_size=rows)
        self.schema = pf.schema_arrow
        self.total = max(pf.metadata.num_rows, 1)
        self.done = 0
        self.count = 0

    def load_next(self) -> Batch | None:
        """Map the next batch of rows into a table; None at the end."""
        record_batch = next(self.batches, None)
        if record_batch is None:
            return None
        arrow = pa.Table.from_batches([record_batch])
        table = self._load(arrow, f"batch_{self.count}")
        self.count += 1
        self.done += arrow.num_rows
        return Batch(table, self.extras, lambda con: self._raw(con, arrow), self.done)

    def empty(self) -> Batch:
        """An empty batch, so an export without rows still gets its tables."""
        table = self._load(self.schema.empty_table(), "batch_empty")
        return Batch(table, self.extras, lambda con: [], 0)

    def _load(self, arrow: pa.Table, table: str) -> str:
        self.con.register("raw", arrow)
        try:
            self.con.execute(f"CREATE TABLE {table} AS {self.select} FROM raw")
        finally:
            self.con.unregister("raw")
        return table

    def _raw(self, con: duckdb.DuckDBPyConnection, arrow: pa.Table) -> RawItems:
        if self.text is None:
            return []
        con.register("raw_items", arrow)
        try:
            rows = con.execute(
                f"SELECT CAST(media_id AS VARCHAR), unnest(from_json({self.text}, "
                f"{_RAW_STRUCTURE})) FROM raw_items"
            ).fetchall()
        finally:
            con.unregister("raw_items")
        return [(r[0], r[1]) for r in rows]


def parquet_select(arrow_schema: pa.Schema, path: Path) -> tuple[str, list[str]]:
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
        expr = f'"{name}"' if _is_text(arrow_schema.field(name).type) else f'to_json("{name}")'
        parts.append(f'CAST({expr} AS VARCHAR) AS "{name}"')
    return "SELECT " + ", ".join(parts), extras


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _items_text(arrow_schema: pa.Schema) -> str | None:
    """SQL giving ``metadata_items`` as JSON text (for items of unknown types only)."""
    if "metadata_items" not in arrow_schema.names:
        return None
    kind = arrow_schema.field("metadata_items").type
    return "metadata_items" if _is_text(kind) else "to_json(metadata_items)"


def _items_expr(arrow_schema: pa.Schema) -> str:
    if "metadata_items" not in arrow_schema.names:
        return f"CAST([] AS {schema.ITEMS_TYPE})"
    if _is_text(arrow_schema.field("metadata_items").type):
        return f"from_json(metadata_items, '{schema.ITEMS_STRUCTURE}')"
    # A list of structs with whatever fields its writer had: DuckDB (>= 2.0) casts
    # structs by field name, so missing fields become NULL and extra ones are dropped.
    return f"CAST(metadata_items AS {schema.ITEMS_TYPE})"


def parquet_top_level(pf: pq.ParquetFile) -> dict[str, Any]:
    """The ``info`` block stored as JSON in the file's key-value metadata, if any."""
    raw = (pf.schema_arrow.metadata or {}).get(b"info")
    if raw is None:
        return {}
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return {"info": info} if isinstance(info, dict) else {}
