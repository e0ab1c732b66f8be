"""Write a query's result with DuckDB's own writers (CSV, TSV, JSON, NDJSON, Parquet).

The shell path: ``vlanalyze sql EXPORT QUERY --format csv`` needs neither polars nor
pyarrow, which cost more to import than the query takes to run on a cached export.
DuckDB's ``COPY`` writes the result into a named pipe (FIFO) in a private temporary
folder; a thread copies what comes out of the pipe to the caller's binary stream. So the
result streams (memory stays bounded whatever its size), any stream works (a file, a
pipe, a test's buffer), and DuckDB never opens the caller's file by name (which could
truncate a file the shell opened for appending).

Nested values (lists, structs, maps) become JSON text in CSV and TSV, as they do in
every other output of vlanalyze. Imports nothing heavier than duckdb.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import duckdb

#: The formats DuckDB writes itself, and the ``COPY`` options that make them.
COPY_OPTIONS = {
    "csv": "FORMAT csv, HEADER true",
    "tsv": "FORMAT csv, HEADER true, DELIMITER '\t'",
    "json": "FORMAT json, ARRAY true",
    "ndjson": "FORMAT json",
    "parquet": "FORMAT parquet",
}
_NESTED = frozenset({"list", "struct", "map", "array", "union"})
_CHUNK = 1 << 20
_WORD = re.compile(r"\w+")
#: Words of a query that may reach tables it does not name.
_CATALOG = frozenset(
    {"show", "describe", "summarize", "pragma", "information_schema", "pg_catalog", "query",
     "query_table", "sqlite_master", "tables", "catalog"}
)  # fmt: skip


def copy_result(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Mapping[str, Any] | None,
    fmt: str,
    out: BinaryIO,
    *,
    guard: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> int | None:
    """Run ``query`` on ``con`` and write its result to ``out`` in ``fmt``.

    A query that returns no result (``CREATE``, ``SET``) writes nothing. A result with
    an ``INTERVAL`` column is not written either (None is returned): vlanalyze writes
    intervals as ISO 8601 text or durations, DuckDB as its own text. DuckDB's own
    errors are raised inside ``guard()`` (the caller's translation); an error writing
    ``out`` is raised outside it, as it is (a closed pipe stays a ``BrokenPipeError``).

    Returns:
        The number of rows written; None if nothing was, for an ``INTERVAL`` column.

    Raises:
        ValueError: ``fmt`` is not one of :data:`COPY_OPTIONS`.
        OSError: ``out`` could not be written (a closed pipe, a full disk).
    """
    if fmt not in COPY_OPTIONS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(COPY_OPTIONS)}")
    with guard():
        rel = con.sql(query, params=dict(params) if params else None)
        if rel is None:
            return 0
        if any(t.id == "interval" for t in rel.types):
            return None
        if fmt in ("csv", "tsv"):
            rel = _nested_as_json(rel)
    with tempfile.TemporaryDirectory(prefix="vlanalyze-") as tmp:
        fifo = Path(tmp) / "result"
        os.mkfifo(fifo, 0o600)
        with _Pump(fifo, out), guard():
            copied = _copy(con, rel, f"TO {_literal(str(fifo))} ({COPY_OPTIONS[fmt]})")
    return int(copied[0][0]) if copied else 0


def _copy(
    con: duckdb.DuckDBPyConnection, __vlanalyze_result__: duckdb.DuckDBPyRelation, target: str
) -> list[Any]:
    """``COPY`` the relation (found by DuckDB as this frame's local variable, so it adds
    no view that ``SHOW TABLES`` would list) to ``target``."""
    return con.execute(f"COPY (FROM __vlanalyze_result__) {target}").fetchall()


def tables_named(query: str, tables: Collection[str]) -> list[str] | None:
    """The ``tables`` whose names appear as words in ``query``: the views a connection
    needs for it (each costs a read of its Parquet footers). None (all of them) when the
    query may list or reach tables without naming them (SHOW, DESCRIBE, the catalog).
    """
    words = {w.lower() for w in _WORD.findall(query)}
    if words & _CATALOG or any(w.startswith("duckdb_") for w in words):
        return None
    return [t for t in tables if t.lower() in words]


def _nested_as_json(rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """``rel`` with its nested columns as JSON text (CSV cannot hold them)."""
    types = [t.id for t in rel.types]
    if not _NESTED.intersection(types):
        return rel
    columns = [
        duckdb.FunctionExpression("to_json", duckdb.ColumnExpression(name)).alias(name)
        if kind in _NESTED
        else duckdb.ColumnExpression(name)
        for name, kind in zip(rel.columns, types, strict=True)
    ]
    return rel.select(*columns)


def _literal(text: str) -> str:
    """``text`` as a SQL string literal (our own temporary path: COPY takes no parameter)."""
    if "\x00" in text:
        raise ValueError(f"a SQL string cannot hold a NUL character: {text!r}")
    return "'" + text.replace("'", "''") + "'"


class _Pump:
    """Copies what DuckDB writes into ``fifo`` to ``out``, on a thread, until closed.

    The pipe is opened for reading, and held open for writing too, before DuckDB opens
    it: DuckDB never blocks waiting for a reader, and the reader sees the end only once
    DuckDB and this object are both done (or DuckDB failed before writing anything).
    If ``out`` fails (the reader of a shell pipe went away), the pipe is closed, so
    DuckDB's next write fails too, and that first error is the one raised.
    """

    def __init__(self, fifo: Path, out: BinaryIO) -> None:
        self._out = out
        self._read = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(self._read, True)
        self._hold = os.open(fifo, os.O_WRONLY)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vlanalyze-copy", daemon=True)

    def __enter__(self) -> _Pump:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while data := os.read(self._read, _CHUNK):
                self._out.write(data)
        except BaseException as exc:  # handed to the main thread in __exit__
            self._error = exc
        finally:
            os.close(self._read)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        os.close(self._hold)
        self._thread.join()
        if self._error is not None:
            raise self._error
