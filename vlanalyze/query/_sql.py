"""The one door between vlanalyze and DuckDB: connections, quoting, error translation.

* :func:`connect` opens every DuckDB connection vlanalyze uses (the normalizer's and
  :meth:`Export.duckdb`'s): quiet, with a memory limit, and working inside a Jupyter
  kernel that has no ``ipywidgets`` (where DuckDB refuses even to *disable* its
  progress bar, because it has already disabled it itself).
* :func:`quote_ident` is the only way a name from the data (a JSON key, a Parquet
  column) reaches SQL text; :func:`quote_literal` the only way a path does where DuckDB
  takes no bound parameter (``COPY ... TO``). Values are bound parameters.
* :func:`map_exceptions` turns DuckDB, Arrow and OS errors into the project's errors at
  the library's boundaries, saying what happened (disk full, interrupted, a cache file
  that cannot be read), so no call site writes its own ``try/except``.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb

from vlanalyze.errors import CacheError, Fix, QueryError, VLAnalyzeError

REBUILD = Fix("refresh", "to rebuild it", prefix="reopen and ")
"""The next step when a cache file cannot be read."""

_NO_SPACE = ("no space left on device", "disk quota exceeded")


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB identifier: any text (quotes, newlines, ``--``) stays a name."""
    if "\x00" in name:
        raise ValueError(f"a SQL name cannot hold a NUL character: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a DuckDB string literal, for the few places that take no parameter."""
    if "\x00" in text:
        raise ValueError(f"a SQL string cannot hold a NUL character: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def connect(
    *, memory_limit: str | None = None, temp_dir: Path | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection that prints nothing.

    ``temp_dir`` is where DuckDB may spill (inside a folder of ours), ``memory_limit`` and
    ``threads`` are DuckDB's settings of the same names.
    """
    config: dict[str, str | bool | int | float | list[str]] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if temp_dir is not None:
        config["temp_directory"] = str(temp_dir)
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(config=config)
    # Inside a Jupyter kernel without ipywidgets DuckDB has already turned its progress
    # bar off and refuses any change to it ("Could not change the progress bar setting"):
    # then there is nothing left to silence.
    with suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    return con


@dataclass(frozen=True)
class Doing:
    """What the code inside :func:`map_exceptions` is doing, to word its errors.

    ``action`` reads after "while" ("building the cache of /x/metadata.json");
    ``error`` is the error class for a failure that is not a fault of the machine;
    ``cache`` is the cache folder being read, if any (only an error naming a file under
    it is called a cache error); ``space_hint`` is the next step when the disk is full.
    """

    action: str
    error: type[VLAnalyzeError] = QueryError
    space_error: type[VLAnalyzeError] | None = None
    cache: Path | None = None
    space_hint: str = "free disk space and run it again"
    space_fix: Fix | None = None  # in place of space_hint, when it names an argument
    hint: str | None = None
    catalog_hint: str | None = None  # for an unknown table or column
    subject: str | None = None  # the file the data comes from, named first in messages


@contextmanager
def map_exceptions(doing: Doing) -> Iterator[None]:
    """Translate DuckDB, Arrow and OS errors raised inside into the project's errors.

    Ctrl-C (``KeyboardInterrupt``, or DuckDB's interrupted query) leaves as
    ``KeyboardInterrupt``; a :class:`VLAnalyzeError` passes through unchanged.
    """
    try:
        yield
    except (KeyboardInterrupt, VLAnalyzeError):
        raise
    except _translatable() as exc:
        mapped = translate(exc, doing)
        if mapped is None:
            raise
        raise mapped from None


def translate(exc: BaseException, doing: Doing) -> BaseException | None:
    """The error to raise in place of ``exc`` (None: not ours to translate)."""
    message = first_line(exc)
    lowered = message.lower()
    if _interrupted(exc, lowered):
        return KeyboardInterrupt()
    if _no_space(exc, lowered):
        error = doing.space_error or doing.error
        message = f"no space left on device while {doing.action}"
        if doing.space_fix is not None:
            return error(message, fix=doing.space_fix)
        return error(message, hint=doing.space_hint)
    if isinstance(exc, RecursionError):
        return doing.error(f"data nested too deeply while {doing.action}", hint=doing.hint)
    if isinstance(exc, RuntimeError) and not isinstance(exc, duckdb.Error):
        return None
    if doing.cache is not None and _names_cache_file(exc, message, doing.cache):
        return CacheError(f"cannot read the cache {doing.cache}: {message}", fix=REBUILD)
    if isinstance(exc, OSError):
        what = exc.strerror or message
        where = f" {exc.filename}" if exc.filename else ""
        return doing.error(f"{what}{where} while {doing.action}", hint=doing.hint)
    if doing.subject is not None and doing.subject not in message:
        message = f"{doing.subject}: {message}"
    if isinstance(exc, duckdb.CatalogException) and doing.catalog_hint is not None:
        return doing.error(message, hint=doing.catalog_hint)
    return doing.error(message, hint=doing.hint)


def is_fault(exc: BaseException) -> bool:
    """True when ``exc`` is the machine's doing (Ctrl-C, disk full), not the data's."""
    lowered = first_line(exc).lower()
    return _interrupted(exc, lowered) or _no_space(exc, lowered)


def _interrupted(exc: BaseException, lowered: str) -> bool:
    if isinstance(exc, KeyboardInterrupt | duckdb.InterruptException):
        return True
    # DuckDB's Python layer reports a Ctrl-C inside a query as "Query interrupted".
    return isinstance(exc, RuntimeError | duckdb.Error) and "query interrupted" in lowered


def _no_space(exc: BaseException, lowered: str) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(marker in lowered for marker in _NO_SPACE)


def _names_cache_file(exc: BaseException, message: str, cache: Path) -> bool:
    if isinstance(exc, OSError) and exc.filename:
        return Path(str(exc.filename)).is_relative_to(cache)
    if isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException, *_arrow_errors())):
        return str(cache) in message
    return False


def _translatable() -> tuple[type[BaseException], ...]:
    """The errors :func:`map_exceptions` translates."""
    return (duckdb.Error, OSError, RuntimeError, RecursionError, *_arrow_errors())


def _arrow_errors() -> tuple[type[Exception], ...]:
    """pyarrow's error class, if pyarrow is loaded (only then can it raise): the shell's
    queries answered by DuckDB alone never import it."""
    pa = sys.modules.get("pyarrow")
    return (pa.ArrowException,) if pa is not None else ()


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (DuckDB's run to several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
