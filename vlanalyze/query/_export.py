"""An opened export as tidy tables: :class:`Export` (made by :mod:`vlanalyze.query._open`).

Tables as polars LazyFrames, SQL through DuckDB views over one snapshot of the Parquet
cache. It never writes outside the cache root; see :mod:`vlanalyze.query._cache`
for how processes share a cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, closing, contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from duckdb import DuckDBPyConnection

from vlanalyze._fs import write_text_atomic
from vlanalyze.errors import CacheError, QueryError
from vlanalyze.query import _schema as schema
from vlanalyze.query._arrow import to_frame
from vlanalyze.query._cache import Snapshot
from vlanalyze.query._source import Source, zip_names
from vlanalyze.query._sql import (
    REBUILD,
    Doing,
    connect,
    map_exceptions,
    quote_ident,
    quote_literal,
)

# polars, pyarrow, the normalizer and the result types load only when used: answering
# SQL over a cache in CSV, JSON or Parquet (the shell's short queries) needs DuckDB alone.
if TYPE_CHECKING:
    import polars as pl

    from vlanalyze.query._images import ImageMatch
    from vlanalyze.query._results import ExportInfo, ImageCounts


class Export:
    """An opened export: its tables as polars LazyFrames and DuckDB views."""

    def __init__(self, source: Source, snapshot: Snapshot) -> None:
        self.source = source
        self._snapshot = snapshot
        self._manifest = snapshot.manifest
        self._con: DuckDBPyConnection | None = None

    @property
    def cache_path(self) -> Path:
        """The folder of the cache build this Export reads (kept while it is open)."""
        return self._snapshot.path

    def __repr__(self) -> str:
        return f"<Export {self.source.path} ({self.format}, {self.counts['media']} media)>"

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection used by :meth:`sql` and release the cache build
        (another process may then remove it once the cache was rebuilt)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._snapshot.close()

    def _bounded(self, memory_limit: str) -> AbstractContextManager[None]:
        """Queries run inside use at most ``memory_limit`` of memory (DuckDB spills the
        rest): for what the cache build computes on its own, as the normalizer is bounded."""

        @contextmanager
        def bounded() -> Iterator[None]:
            if self._con is not None:
                self._con.close()
            self._con = self.duckdb()
            self._con.execute("SET memory_limit = $limit", {"limit": memory_limit})
            try:
                yield
            finally:
                self._con.close()
                self._con = None

        return bounded()

    def stored(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s value, kept with this cache build under ``name``.

        Computed once per build, then read back by any process: for summaries that would
        otherwise cost a pass over the data (``info``'s summary, curate's catalog).

        Args:
            name: lowercase letters, digits and ``-`` (it names a file in the cache).
            compute: returns a JSON-serializable value.
        """
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,80}", name):
            raise ValueError(f"stored value name {name!r}: use lowercase letters, digits and -")
        path = self.cache_path / f"stored-{name}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        value = compute()
        with suppress(OSError):  # a read-only cache: computed each time, still right
            write_text_atomic(path, json.dumps(value, default=str), overwrite=True)
        return value

    @property
    def format(self) -> str:
        """``"json"`` or ``"parquet"``: the form of the metadata file."""
        return self._manifest.format

    @property
    def counts(self) -> dict[str, int]:
        """Row count of every table."""
        return dict(self._manifest.counts)

    @property
    def root(self) -> Path:
        """The export folder (or ZIP); ``image_path`` values are relative to it."""
        return self.source.root

    @property
    def info(self) -> ExportInfo:
        """The export's ``info`` block, with format, source, counts and image matching."""
        from vlanalyze.query._results import ExportInfo

        block = self._manifest.top_level.get("info", {})
        return ExportInfo(
            format=self.format,
            source=str(self.source.path),
            counts=self.counts,
            images=self._image_counts(),
            block=dict(block) if isinstance(block, dict) else {},
            metadata=self._metadata_read(),
        )

    def _metadata_read(self) -> str:
        """Which metadata file was read, and the one beside it that was not (if any)."""
        source = self.source
        read = f"{source.metadata}:{source.member}" if source.member else str(source.metadata)
        unread = source.unread
        return read if unread is None else f"{read} ({unread.name} beside it is not read)"

    def _image_counts(self) -> ImageCounts:
        from vlanalyze.query._results import ImageCounts

        if not self._image_files:  # nothing to match: no need for polars
            return ImageCounts(0, 0, self.counts["media"], 0)
        images = self.images
        return ImageCounts(images.files, images.found, images.missing, images.ambiguous)

    @cached_property
    def _image_listing(self) -> tuple[list[str], frozenset[str]]:
        """The export's image files, relative to its ``images/`` folder, and those of
        them that are symlinks."""
        from vlanalyze.query._images import list_folder_images, list_zip_images

        if self.source.member is not None:
            return list_zip_images(zip_names(self.source), self.source.zip_prefix), frozenset()
        return list_folder_images(self.root)

    @property
    def _image_files(self) -> list[str]:
        return self._image_listing[0]

    @cached_property
    def images(self) -> ImageMatch:
        """Which media items have an image file in this export."""
        import polars as pl

        from vlanalyze.query._images import ImageMatch, match_images

        files = self._image_files
        if not files:
            empty = pl.DataFrame(schema={"media_id": pl.String, "image_path": pl.String})
            return ImageMatch(empty, found=0, missing=self.counts["media"], ambiguous=0, files=0)
        media = (
            pl.scan_parquet(self._parts("media"))
            .select("media_id", "file_name", "file_path")
            .collect()
        )
        return match_images(media, files, self._image_listing[1])

    def _parts(self, table: str) -> list[str]:
        if table not in schema.TABLES:
            raise QueryError(
                f"no table named {table!r}", hint=f"tables: {', '.join(schema.TABLES)}"
            )
        files = self._snapshot.parts(table)
        if not files:
            raise CacheError(
                f"the cache {self.cache_path} has no {table} table",
                fix=REBUILD,
            )
        return files

    def table(self, name: str, *, image_path: bool = True) -> pl.LazyFrame:
        """The tidy table ``name`` as a polars LazyFrame (``image_path=False``: media
        without its ``image_path`` column, which lists the export's images)."""
        import polars as pl

        frame = pl.scan_parquet(self._parts(name))
        if name != "media" or not image_path:
            return frame
        paths = self.images.paths
        if paths.height == 0:
            return frame.with_columns(image_path=pl.lit(None, pl.String))
        return frame.join(paths.lazy(), on="media_id", how="left", maintain_order="left")

    @property
    def media(self) -> pl.LazyFrame:
        """One row per media item (see the README for the columns)."""
        return self.table("media")

    @property
    def labels(self) -> pl.LazyFrame:
        """One row per image-level label."""
        return self.table("labels")

    @property
    def objects(self) -> pl.LazyFrame:
        """One row per object label, with its box."""
        return self.table("objects")

    @property
    def issues(self) -> pl.LazyFrame:
        """One row per quality issue (object_id is NULL for image-level ones)."""
        return self.table("issues")

    @property
    def tags(self) -> pl.LazyFrame:
        """One row per user tag."""
        return self.table("tags")

    @property
    def captions(self) -> pl.LazyFrame:
        """One row per caption."""
        return self.table("captions")

    @property
    def other_metadata(self) -> pl.LazyFrame:
        """One row per metadata item of a type vlanalyze does not know (properties as JSON)."""
        return self.table("other_metadata")

    @property
    def tables(self) -> tuple[str, ...]:
        """The names of every table: each is :meth:`table` ``(name)`` and a SQL view.

        ``info`` (one row of the export's top-level fields) has no attribute of its own,
        as :attr:`info` is the typed block: use ``table("info")``.
        """
        return schema.TABLES

    def duckdb(self, *, tables: Collection[str] | None = None) -> DuckDBPyConnection:
        """A new DuckDB connection with every table (or only ``tables``) as a view; the
        caller closes it."""
        con = connect()
        try:
            with self._errors():
                for table in schema.TABLES if tables is None else _ordered(tables):
                    scan = _scan(self._parts(table))
                    if table == "media":
                        self._media_view(con, scan)
                    else:
                        con.execute(f"CREATE VIEW {quote_ident(table)} AS SELECT * FROM {scan}")
        except BaseException:
            con.close()
            raise
        return con

    def _media_view(self, con: DuckDBPyConnection, scan: str) -> None:
        # image_paths (media_id, image_path: the items with an image) is part of the
        # interface: SHOW TABLES lists it, so it is named and documented, not hidden.
        if self._image_files:
            con.register("image_paths", self.images.paths.to_arrow())
        else:  # nothing to match: an empty table, without loading polars
            con.execute(
                "CREATE VIEW image_paths AS SELECT CAST(NULL AS VARCHAR) AS media_id, "
                "CAST(NULL AS VARCHAR) AS image_path WHERE false"
            )
        con.execute(
            f"CREATE VIEW media AS SELECT m.*, i.image_path FROM {scan} AS m "
            "LEFT JOIN image_paths AS i USING (media_id)"
        )

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run ``query`` over the tables and return the result as a polars DataFrame.

        Bind values with ``$name`` placeholders and ``params={"name": value}``.

        Raises:
            QueryError: the query is invalid (syntax, unknown table or column, ...).
            CacheError: a cache file cannot be read.
        """
        with self._errors():
            if self._con is None:
                self._con = self.duckdb()
            rel = self._con.sql(query, params=dict(params) if params else None)
            if rel is None:
                import polars as pl

                return pl.DataFrame()
            return to_frame(rel.to_arrow_table())

    def sql_rows(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run ``query`` and return its rows as plain dicts (no polars involved).

        Raises:
            QueryError: the query is invalid. CacheError: a cache file cannot be read.
        """
        with self._errors():
            if self._con is None:
                self._con = self.duckdb()
            rel = self._con.sql(query, params=dict(params) if params else None)
            if rel is None:
                return []
            names = rel.columns
            return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]

    def copy_sql(
        self,
        query: str,
        out: BinaryIO,
        *,
        fmt: str,
        params: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Run ``query`` and write its result to the binary stream ``out`` as ``fmt``:
        ``csv``, ``tsv``, ``json`` (an array), ``ndjson`` or ``parquet``.

        DuckDB writes the result itself, streamed: memory stays bounded, and neither
        polars nor pyarrow is loaded. Nested values are JSON text in CSV and TSV.

        Returns:
            The number of rows written; None, with nothing written, when the result has
            an ``INTERVAL`` column (use :meth:`sql_batches`: vlanalyze writes intervals
            as durations or ISO 8601 text, DuckDB as its own text).

        Raises:
            QueryError: the query is invalid. CacheError: a cache file cannot be read.
            OSError: ``out`` cannot be written.
        """
        from vlanalyze.query._copyout import copy_result, tables_named

        named = tables_named(query, (*schema.TABLES, "image_paths"))
        # image_paths is registered with the media view
        tables = None if named is None else {"media" if t == "image_paths" else t for t in named}
        with closing(self.duckdb(tables=tables)) as con:
            return copy_result(con, query, params, fmt, out, guard=self._errors)

    def sql_batches(
        self, query: str, params: Mapping[str, Any] | None = None, *, rows: int = 100_000
    ) -> Iterator[pl.DataFrame]:
        """Run ``query`` and yield its result in DataFrames of at most ``rows`` rows.

        For results too big to hold at once: memory stays bounded by ``rows``.

        Raises:
            QueryError: the query is invalid. CacheError: a cache file cannot be read.
        """
        with self._errors(), closing(self.duckdb()) as con:
            rel = con.sql(query, params=dict(params) if params else None)
            if rel is None:
                return
            import pyarrow as pa

            reader = rel.to_arrow_reader(rows)
            empty = True
            for batch in reader:
                empty = False
                yield to_frame(pa.Table.from_batches([batch]))
            if empty:  # still say which columns the result has
                yield to_frame(reader.schema.empty_table())

    def _errors(self) -> AbstractContextManager[None]:
        """DuckDB's errors as ours: a cache file's as CacheError, the rest QueryError."""
        return map_exceptions(
            Doing(
                "running the query",
                error=QueryError,
                cache=self.cache_path,
                catalog_hint=f"tables: {', '.join(schema.TABLES)}",
            )
        )


def _scan(files: list[str]) -> str:
    """``read_parquet`` of ``files``, paths as quoted literals (a view takes no parameter)."""
    return f"read_parquet([{', '.join(quote_literal(f) for f in files)}])"


def _ordered(tables: Collection[str]) -> list[str]:
    unknown = sorted(set(tables) - set(schema.TABLES))
    if unknown:
        raise ValueError(f"no table named {unknown[0]!r}; tables: {', '.join(schema.TABLES)}")
    return [t for t in schema.TABLES if t in tables]
