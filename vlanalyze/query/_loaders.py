"""Loaders of the normalizer: each turns its source into DuckDB tables of canonical
batches (``batch_<n>``: the known media columns, unknown keys, and ``metadata_items``
typed as :data:`vlanalyze.query._schema.ITEMS_TYPE`). The JSON loader is here, the
Parquet one in :mod:`vlanalyze.query._parquetload`.

Two workers share a loader (:mod:`vlanalyze.query._normalize`): each takes the next
:class:`Ticket` (under the workers' lock), loads it on its own DuckDB connection and
writes it, while the other does the same with the next one. A loader writes no file but
the JSON chunk files it is handed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from vlanalyze.query import _schema as schema
from vlanalyze.query._jsonchunks import Chunk, FastPathFailed
from vlanalyze.query._schema import extra_column
from vlanalyze.query._sql import is_fault, quote_ident

# read_json types the columns from the first item alone (the sample) and refuses unknown keys.
_DETECT = "records = true, sample_size = 1, map_inference_threshold = -1"


@dataclass(frozen=True)
class Ticket:
    """The ``index``-th batch of a source, taken but not loaded yet: a JSON chunk file, or
    Parquet rows."""

    index: int
    data: Any


@dataclass
class Batch:
    """One loaded batch: its table, and the unknown keys it has columns for."""

    table: str
    extras: list[str]  # unknown top-level keys, as extra_column(i) columns of the table
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
    Exact reads happen in file order, after every earlier chunk is loaded, so the unknown
    keys' columns keep one order however the workers interleave.
    """

    def __init__(self, path: Path, chunks: Iterable[Chunk]) -> None:
        self.path = path
        self.chunks = iter(chunks)
        self.total = path.stat().st_size
        self.extras: list[str] = []
        self.count = 0
        self.detect = True  # the one-parse read still serves
        self.verified = False  # its types were checked against the canonical ones
        self._loaded = threading.Condition()
        self._done: set[int] = set()
        self._frontier = 0  # every chunk before it is loaded

    def take(self) -> Ticket | None:
        """The next chunk; None at the end. Not thread-safe: the caller serializes."""
        chunk = next(self.chunks, None)
        if chunk is None:
            return None
        self.count += 1
        return Ticket(self.count - 1, chunk)

    def load(self, con: duckdb.DuckDBPyConnection, ticket: Ticket) -> Batch:
        """Parse the ticket's chunk into a table on ``con``."""
        chunk: Chunk = ticket.data
        table = f"batch_{ticket.index}"
        scan = _Scan(str(chunk.path), chunk.format, chunk.lead)
        try:
            if self.detect and chunk.lead and self._load_detected(con, table, scan):
                extras: list[str] = []  # an accepted chunk has no unknown key
            else:
                self._wait_turn(ticket.index)
                self.detect = False
                self.extras = _merge(self.extras, _json_extra_keys(con, scan))
                extras = list(self.extras)
                _load_json(con, table, scan, extras)
        except duckdb.Error as exc:
            if is_fault(exc):
                raise
            if chunk.item_offsets is None:
                raise FastPathFailed(str(exc)) from None
            raise chunk.locate_error(self.path, exc) from None
        finally:
            self._loaded_one(ticket.index)
        return Batch(table, extras, chunk.end_offset, chunk.path.unlink)

    def _wait_turn(self, index: int) -> None:
        """Wait until every chunk before ``index`` is loaded."""
        with self._loaded:
            self._loaded.wait_for(lambda: self._frontier >= index)

    def _loaded_one(self, index: int) -> None:
        with self._loaded:
            self._done.add(index)
            while self._frontier in self._done:
                self._done.remove(self._frontier)
                self._frontier += 1
            self._loaded.notify_all()

    def _load_detected(self, con: duckdb.DuckDBPyConnection, table: str, scan: _Scan) -> bool:
        """Read the chunk typed by its leading sample item; False if DuckDB refuses it."""
        known = ", ".join(quote_ident(k) for k in (*schema.KNOWN_MEDIA_KEYS, "metadata_items"))
        select = f"SELECT {known} FROM {scan.rows('read_json', ', ' + _DETECT)}"
        try:
            con.execute(f"CREATE TABLE {table} AS {schema.with_derived(select)}", scan.params())
        except duckdb.Error as exc:
            if is_fault(exc):
                raise
            return False
        if not self.verified and not _canonical(con, table):
            con.execute(f"DROP TABLE {table}")  # another DuckDB's type detection
            return False
        self.verified = True
        return True

    def empty(self, con: duckdb.DuckDBPyConnection) -> Batch:
        """An empty batch, so an export without items still gets its tables."""
        con.execute(f"CREATE TABLE batch_empty AS {schema.with_derived(_empty_items_select())}")
        return Batch("batch_empty", [], 0)


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
    """Whether ``table`` starts with exactly the canonical columns' types."""
    got = con.execute(f"SELECT column_type FROM (DESCRIBE {table})").fetchall()
    want = con.execute(f"SELECT column_type FROM (DESCRIBE {_empty_items_select()})").fetchall()
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
