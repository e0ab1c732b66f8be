"""Loaders of the normalizer: each turns its source into DuckDB tables of canonical
batches (``batch_<n>``: the known media columns, unknown keys, and ``metadata_items``
typed as :data:`vlanalyze.query._schema.ITEMS_TYPE`).

A loader runs on its own DuckDB connection, in a worker thread, while the writer
(:mod:`vlanalyze.query._normalize`) turns the previous batch into Parquet. It writes no file
but the JSON chunk files it is handed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vlanalyze.errors import ExportFormatError
from vlanalyze.query import _schema as schema
from vlanalyze.query._jsonchunks import Chunk, FastPathFailed
from vlanalyze.query._schema import extra_column
from vlanalyze.query._sql import is_fault, quote_ident, quote_literal

RawItems = list[tuple[str, Any]]
_RAW_STRUCTURE = """'[{"type": "VARCHAR", "properties": "JSON"}]'"""
# read_json types the columns from the first item alone (the sample) and refuses unknown keys.
_DETECT = "records = true, sample_size = 1, map_inference_threshold = -1"
_RAW_ITEMS = {"media_id": "VARCHAR", "metadata_items": "STRUCT(type VARCHAR, properties JSON)[]"}


@dataclass
class Batch:
    """One loaded batch: its table, and how to reach its raw items (for unknown types)."""

    table: str
    extras: list[str]  # unknown top-level keys, as extra_column(i) columns of the table
    raw_items: Callable[[duckdb.DuckDBPyConnection], RawItems]
    done: int  # progress after this batch
    cleanup: Callable[[], None] = lambda: None


def _empty_items_select() -> str:
    cols = ", ".join(
        f"CAST(NULL AS {t}) AS {quote_ident(k)}" for k, t in schema.KNOWN_MEDIA_KEYS.items()
    )
    return f"SELECT {cols}, CAST(NULL AS {schema.ITEMS_TYPE}) AS metadata_items LIMIT 0"


class JsonLoader:
    """Parses JSON chunk files (see :mod:`vlanalyze.query._jsonchunks`), one per batch.

    Each chunk file starts with :data:`~vlanalyze.query._schema.SAMPLE_ITEM`. DuckDB
    detects the column types from that item alone, so it reads the chunk in one parse
    with exactly the canonical types, and refuses any key the sample lacks. While that
    holds, an export has no unknown key. The first chunk it refuses (a new key, a value
    of the wrong type...) and every chunk after it are read the exact way instead: one
    more parse lists every unknown top-level key, read as text beside the known columns.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, chunks: Iterable[Chunk]) -> None:
        self.con = con
        self.path = path
        self.chunks = iter(chunks)
        self.total = path.stat().st_size
        self.extras: list[str] = []
        self.count = 0
        self.detect = True  # the one-parse read still serves
        self.verified = False  # its types were checked against the canonical ones

    def load_next(self) -> Batch | None:
        """Parse the next chunk into a table; None at the end."""
        chunk = next(self.chunks, None)
        if chunk is None:
            return None
        table = f"batch_{self.count}"
        self.count += 1
        scan = _Scan(str(chunk.path), chunk.format, chunk.lead)
        try:
            if not (self.detect and chunk.lead and self._load_detected(table, scan)):
                self.detect = False
                self.extras = _merge(self.extras, _json_extra_keys(self.con, scan))
                _load_json(self.con, table, scan, self.extras)
        except duckdb.Error as exc:
            if is_fault(exc):
                raise
            if chunk.item_offsets is None:
                raise FastPathFailed(str(exc)) from None
            raise chunk.locate_error(self.path, exc) from None
        return Batch(
            table,
            self.extras,
            lambda con: _raw_json_items(con, scan),
            chunk.end_offset,
            chunk.path.unlink,
        )

    def _load_detected(self, table: str, scan: _Scan) -> bool:
        """Read the chunk typed by its leading sample item; False if DuckDB refuses it."""
        known = ", ".join(quote_ident(k) for k in (*schema.KNOWN_MEDIA_KEYS, "metadata_items"))
        select = f"SELECT {known} FROM {scan.rows('read_json', ', ' + _DETECT)}"
        try:
            self.con.execute(
                f"CREATE TABLE {table} AS {schema.with_derived(select)}", scan.params()
            )
        except duckdb.Error as exc:
            if is_fault(exc):
                raise
            return False
        if not self.verified and not _canonical(self.con, table):
            self.con.execute(f"DROP TABLE {table}")  # another DuckDB's type detection
            return False
        self.verified = True
        return True

    def empty(self) -> Batch:
        """An empty batch, so an export without items still gets its tables."""
        self.con.execute(
            f"CREATE TABLE batch_empty AS {schema.with_derived(_empty_items_select())}"
        )
        return Batch("batch_empty", [], lambda con: [], 0)


@dataclass(frozen=True)
class _Scan:
    """One chunk file as DuckDB reads it: whether to skip its leading sample item."""

    file: str
    format: str
    lead: bool

    def rows(self, function: str, args: str = "") -> str:
        """SQL of the file's items through ``function`` (``read_json``...), the lead left
        out; its parameters are :meth:`params` (``args`` adds SQL-only arguments)."""
        offset = " OFFSET 1" if self.lead else ""
        return f"(SELECT * FROM {function}(?, format = ?{args}){offset})"

    def params(self) -> list[Any]:
        return [self.file, self.format]


def _canonical(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` has exactly the canonical column types."""
    con.execute(f"CREATE TEMP TABLE _vla_canon AS {_empty_items_select()}")
    try:
        got = con.execute(f"SELECT column_type FROM (DESCRIBE {table})").fetchall()
        want = con.execute("SELECT column_type FROM (DESCRIBE _vla_canon)").fetchall()
    finally:
        con.execute("DROP TABLE _vla_canon")
    return got[: len(want)] == want


def _merge(known: list[str], found: list[str]) -> list[str]:
    """``known`` then the new names of ``found``: earlier batches' columns keep their place."""
    return known + [k for k in found if k not in known]


def _json_extra_keys(con: duckdb.DuckDBPyConnection, scan: _Scan) -> list[str]:
    """Every unknown top-level key of every item in ``file``: exact, read by DuckDB.

    One more parse of the chunk, so that a key carried by a handful of items of a huge
    export is found as surely as a common one. (The sample item has only known keys.)
    """
    rows = con.execute(
        "SELECT DISTINCT unnest(json_keys(json)) FROM read_json_objects(?, format = ?)",
        scan.params(),
    ).fetchall()
    known = {*schema.KNOWN_MEDIA_KEYS, "metadata_items"}
    return sorted(r[0] for r in rows if r[0] not in known)


def json_pointer(key: str) -> str:
    """The JSON Pointer (RFC 6901) of the top-level ``key``: any text, exactly."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _load_json(con: duckdb.DuckDBPyConnection, table: str, scan: _Scan, extras: list[str]) -> None:
    """The known columns as DuckDB types them; each unknown key's value as text, taken by
    JSON Pointer from the same items (names never reach SQL, and ``Foo``/``foo`` stay two).
    """
    columns = {**schema.KNOWN_MEDIA_KEYS, "metadata_items": schema.ITEMS_TYPE}
    known = ", ".join(quote_ident(k) for k in schema.KNOWN_MEDIA_KEYS)
    items = scan.rows("read_json", ", columns = ?")
    if not extras:
        select = f"SELECT {known}, metadata_items FROM {items}"
        con.execute(
            f"CREATE TABLE {table} AS {schema.with_derived(select)}", [*scan.params(), columns]
        )
        return
    unpack = "".join(f", _vla_x[{i + 1}] AS {extra_column(i)}" for i in range(len(extras)))
    objects = scan.rows("read_json_objects")
    select = (
        f"SELECT {known}, metadata_items{unpack} FROM {items} "
        f"POSITIONAL JOIN (SELECT json_extract_string(json, ?) AS _vla_x FROM {objects})"
    )
    con.execute(
        f"CREATE TABLE {table} AS {schema.with_derived(select)}",
        [*scan.params(), columns, [json_pointer(k) for k in extras], *scan.params()],
    )


def _raw_json_items(con: duckdb.DuckDBPyConnection, scan: _Scan) -> RawItems:
    items = scan.rows("read_json", ", columns = ?")
    rows = con.execute(
        f"SELECT media_id, unnest(metadata_items) FROM {items}", [*scan.params(), _RAW_ITEMS]
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


class ParquetLoader:
    """Reads a ``metadata.parquet`` in batches of rows, mapped onto the canonical columns.

    The file's columns are renamed by position (``_vla_c<i>``) before DuckDB sees them,
    so no column name from the file ever reaches SQL text.
    """

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
        arrow = _positional(pa.Table.from_batches([record_batch]))
        table = self._load(arrow, f"batch_{self.count}")
        self.count += 1
        self.done += arrow.num_rows
        return Batch(table, self.extras, lambda con: self._raw(con, arrow), self.done)

    def empty(self) -> Batch:
        """An empty batch, so an export without rows still gets its tables."""
        table = self._load(_positional(self.schema.empty_table()), "batch_empty")
        return Batch(table, self.extras, lambda con: [], 0)

    def _load(self, arrow: pa.Table, table: str) -> str:
        self.con.register("raw", arrow)
        try:
            select = schema.with_derived(f"{self.select} FROM raw")
            self.con.execute(f"CREATE TABLE {table} AS {select}")
        finally:
            self.con.unregister("raw")
        return table

    def _raw(self, con: duckdb.DuckDBPyConnection, arrow: pa.Table) -> RawItems:
        if self.text is None:
            return []
        con.register("raw_items", arrow)
        try:
            rows = con.execute(
                f"SELECT CAST({self.media_id} AS VARCHAR), unnest(from_json({self.text}, "
                f"{_RAW_STRUCTURE})) FROM raw_items"
            ).fetchall()
        finally:
            con.unregister("raw_items")
        return [(r[0], r[1]) for r in rows]

    @property
    def media_id(self) -> str:
        return _col(list(self.schema.names).index("media_id"))


def _col(index: int) -> str:
    """The positional name of a Parquet export's ``index``-th column."""
    return f"_vla_c{index}"


def _positional(arrow: pa.Table) -> pa.Table:
    return arrow.rename_columns([_col(i) for i in range(arrow.num_columns)])


def parquet_select(arrow_schema: pa.Schema, path: Path) -> tuple[str, list[str]]:
    """SELECT list mapping a Parquet export's (positionally named) columns onto the
    canonical ones; and the names of the unknown columns, in file order."""
    names = list(arrow_schema.names)
    if "media_id" not in names:
        shown = ", ".join(repr(n) for n in names[:12])
        raise ExportFormatError(
            f"{path}: no 'media_id' column (columns: {shown})",
            hint="this is not a Visual Layer metadata.parquet",
        )
    index = {n: i for i, n in reversed(list(enumerate(names)))}  # the first of a name
    rename = {"file_name": "image_filename"} if "file_name" not in names else {}
    parts, used = [], set()
    for key, sql_type in schema.KNOWN_MEDIA_KEYS.items():
        col = rename.get(key, key)
        expr = f"CAST(NULL AS {sql_type})"
        if col in index:
            used.add(index[col])
            expr = f"TRY_CAST({_col(index[col])} AS {sql_type})"
        parts.append(f"{expr} AS {quote_ident(key)}")
    parts.append(f"{_items_expr(arrow_schema)} AS metadata_items")
    if "metadata_items" in index:
        used.add(index["metadata_items"])
    extras = [(i, n) for i, n in enumerate(names) if i not in used]
    for j, (i, _name) in enumerate(extras):
        kind = arrow_schema.field(i).type
        expr = _col(i) if _is_text(kind) else f"to_json({_col(i)})"
        parts.append(f"CAST({expr} AS VARCHAR) AS {extra_column(j)}")
    return "SELECT " + ", ".join(parts), [n for _i, n in extras]


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _items_text(arrow_schema: pa.Schema) -> str | None:
    """SQL giving ``metadata_items`` as JSON text (for items of unknown types only)."""
    if "metadata_items" not in arrow_schema.names:
        return None
    i = list(arrow_schema.names).index("metadata_items")
    return _col(i) if _is_text(arrow_schema.field(i).type) else f"to_json({_col(i)})"


def _items_expr(arrow_schema: pa.Schema) -> str:
    if "metadata_items" not in arrow_schema.names:
        return f"CAST([] AS {schema.ITEMS_TYPE})"
    i = list(arrow_schema.names).index("metadata_items")
    col = _col(i)
    if _is_text(arrow_schema.field(i).type):
        return f"from_json({col}, {quote_literal(schema.ITEMS_STRUCTURE)})"
    # A list of structs with whatever fields its writer had: DuckDB (>= 2.0) casts
    # structs by field name, so missing fields become NULL and extra ones are dropped.
    return f"CAST({col} AS {schema.ITEMS_TYPE})"


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
