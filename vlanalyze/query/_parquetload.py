"""The Parquet loader of the normalizer: reads a ``metadata.parquet`` in batches of rows,
mapped onto the canonical columns (see :mod:`vlanalyze.query._loaders` for the JSON one).

Apart from the JSON loader so that opening a JSON export does not import pyarrow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vlanalyze.errors import ExportFormatError
from vlanalyze.query import _schema as schema
from vlanalyze.query._loaders import Batch, Ticket
from vlanalyze.query._schema import extra_column
from vlanalyze.query._sql import quote_ident, quote_literal


class ParquetLoader:
    """Reads a ``metadata.parquet`` in batches of rows, mapped onto the canonical columns.

    The file's columns are renamed by position (``_vla_c<i>``) before DuckDB sees them,
    so no column name from the file ever reaches SQL text.
    """

    def __init__(self, pf: pq.ParquetFile, path: Path, *, rows: int) -> None:
        self.select, self.extras = parquet_select(pf.schema_arrow, path)
        self.batches = pf.iter_batches(batch_size=rows)
        self.schema = pf.schema_arrow
        self.total = max(pf.metadata.num_rows, 1)
        self.done = 0
        self.count = 0

    def take(self) -> Ticket | None:
        """The next batch of rows; None at the end. Not thread-safe: the caller serializes."""
        record_batch = next(self.batches, None)
        if record_batch is None:
            return None
        self.count += 1
        self.done += record_batch.num_rows
        return Ticket(self.count - 1, (record_batch, self.done))

    def load(self, con: duckdb.DuckDBPyConnection, ticket: Ticket) -> Batch:
        """Map the ticket's rows into a table on ``con``."""
        record_batch, done = ticket.data
        arrow = _positional(pa.Table.from_batches([record_batch]))
        table = self._load(con, arrow, f"batch_{ticket.index}")
        return Batch(table, self.extras, done)

    def empty(self, con: duckdb.DuckDBPyConnection) -> Batch:
        """An empty batch, so an export without rows still gets its tables."""
        table = self._load(con, _positional(self.schema.empty_table()), "batch_empty")
        return Batch(table, self.extras, 0)

    def _load(self, con: duckdb.DuckDBPyConnection, arrow: pa.Table, table: str) -> str:
        con.register("raw", arrow)
        try:
            select = schema.with_derived(f"{self.select} FROM raw")
            con.execute(f"CREATE TABLE {table} AS {select}")
        finally:
            con.unregister("raw")
        return table


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
