"""Pick a training subset: :func:`select`, :func:`top` and the :class:`Selection` they return.

The work happens in DuckDB over the export's cached tables (see
:mod:`vlanalyze.curate._steps`), so memory stays bounded on a 10-million-row export;
the selection is held in a DuckDB temp table and read (``.table``) or streamed to a file
(``.write``) on demand. Never prints; writes only the file it is asked to write.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
from duckdb import DuckDBPyConnection

from vlanalyze._tablefile import write_data_file
from vlanalyze.curate._recipe import IssueGate, Recipe
from vlanalyze.curate._rules import Catalog, primary_labels, rank_order
from vlanalyze.curate._steps import Pipeline
from vlanalyze.errors import MaterializeError, QueryError, SelectionError
from vlanalyze.query._export import Export
from vlanalyze.query._sql import Doing, map_exceptions, quote_ident

MEMORY_LIMIT = "1GB"  # DuckDB's share; it spills beyond (peak RSS target: 2 GB at 10M)
OUTPUT_COLUMNS = (
    "media_id",
    "file_path",
    "image_path",
    "file_name",
    "media_type",
    "uniqueness_score",
    "cluster_id",
    "video_name",
    "width",
    "height",
)
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
}


class Selection:
    """The result of :func:`select`: the chosen rows and how they were chosen.

    Attributes:
        recipe: the rules (:class:`Recipe`; ``recipe.to_toml()`` saves them).
        funnel: one row per step: ``step, rows_in, rows_out, removed``.
        leakage: with a split, near-duplicate groups (at the loosest level) and videos
            whose rows landed in more than one split; else None.
        export: which export it was made from (path, format, fingerprint, dataset).

    The rows stay in DuckDB until asked for: :attr:`table`, :attr:`removed`,
    :meth:`batches`, :meth:`write`. Close it (or use ``with``) to free them.
    """

    def __init__(
        self,
        con: DuckDBPyConnection,
        recipe: Recipe,
        funnel: list[dict[str, Any]],
        leakage: dict[str, object] | None,
        export: dict[str, Any],
        *,
        has_removed: bool,
        work: Path,
    ) -> None:
        self._con: DuckDBPyConnection | None = con
        self._release = weakref.finalize(self, _release, con, work)
        self.recipe = recipe
        self.funnel = pl.DataFrame(
            funnel,
            schema={
                "step": pl.String,
                "rows_in": pl.Int64,
                "rows_out": pl.Int64,
                "removed": pl.Int64,
            },
        )
        self.leakage = leakage
        self.export = export
        self._has_removed = has_removed
        count = con.execute("SELECT count(*) FROM selection").fetchall()
        self.rows = int(count[0][0])

    def __repr__(self) -> str:
        return f"<Selection {self.rows} rows of {self.export['source']}>"

    def __len__(self) -> int:
        return self.rows

    def __enter__(self) -> Selection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the rows held in DuckDB (what was already read stays readable)."""
        if self._con is not None:
            self._release()
            self._con = None

    def _con_open(self) -> DuckDBPyConnection:
        if self._con is None:
            raise ValueError("this Selection is closed")
        return self._con

    @cached_property
    def table(self) -> pl.DataFrame:
        """The selected rows, ``media_id`` first, in rank order."""
        return pl.concat(list(self.batches()))

    @cached_property
    def removed(self) -> pl.DataFrame:
        """Every dropped row: ``media_id, file_path, step, reason, duplicate_of``."""
        return pl.concat(list(self.batches("removed")))

    def batches(self, what: str = "selection", rows: int = 100_000) -> Iterator[pl.DataFrame]:
        """The selection (or ``"removed"``) in DataFrames of at most ``rows`` rows."""
        if what == "removed" and not self._has_removed:
            raise ValueError("select(..., keep_removed=False) did not keep the removed rows")
        query = {
            "selection": "SELECT * FROM selection ORDER BY rank",
            "removed": "SELECT r.media_id, m.file_path, r.step, r.reason, r.duplicate_of "
            "FROM removed AS r JOIN media AS m USING (media_id) ORDER BY r.step_no, r.media_id",
        }[what]
        reader = self._con_open().sql(query).to_arrow_reader(rows)
        empty = True
        for batch in reader:
            empty = False
            yield _frame(pa.Table.from_batches([batch]))
        if empty:
            yield _frame(reader.schema.empty_table())

    def metadata(self) -> dict[str, str]:
        """Key-value metadata of a Parquet selection: recipe (TOML), export, funnel."""
        return {
            "vlanalyze.recipe": self.recipe.to_toml(),
            "vlanalyze.export": json.dumps(self.export, sort_keys=True),
            "vlanalyze.funnel": json.dumps(self.funnel.to_dicts()),
        }

    def write(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        overwrite: bool = False,
        removed: bool = False,
    ) -> int:
        """Write the selection (``removed=True``: the removed rows) to ``path``, atomically.

        Args:
            path: the file; its extension gives the format unless ``format`` is given.
            format: csv, tsv, json, ndjson or parquet.
            overwrite: replace ``path`` if it exists.
            removed: write the removed rows instead of the selection.

        Returns:
            The number of rows written.

        Raises:
            MaterializeError: ``path`` exists (without ``overwrite``) or cannot be written.
            SelectionError: the format cannot be told from the extension.
        """
        fmt = format or SUFFIX_FORMATS.get(Path(path).suffix.lower())
        if fmt is None:
            raise SelectionError(
                f"cannot tell the format of {path} from its extension",
                hint=f"pass format=... or use one of {', '.join(SUFFIX_FORMATS)}",
            )
        batches = self.batches("removed" if removed else "selection")
        meta = self.metadata() if fmt == "parquet" else None
        with map_exceptions(Doing(f"writing {path}", error=MaterializeError)):
            return write_data_file(batches, fmt, path, overwrite=overwrite, metadata=meta)


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _export_info(ex: Export) -> dict[str, Any]:
    info = ex.info
    return {
        "source": str(ex.source.path),
        "format": ex.format,
        "fingerprint": ex.source.fingerprint(),
        "dataset": info.dataset,
        "export_time": info.export_time,
        "media": ex.counts["media"],
    }


def _finish(pipe: Pipeline) -> None:
    """The ``selection`` table: output columns, primary label, split, rank."""
    r, cur, p = pipe.r, pipe.cur, pipe.split_params
    cols = [f"m.{quote_ident(c)}" for c in OUTPUT_COLUMNS]
    if r.by not in OUTPUT_COLUMNS:
        cols.append(f"m.{quote_ident(r.by)}")
    cols.append("pl.label")
    if r.split:
        cols.append(f"{pipe.split_case} AS split")
    labels = primary_labels(r, p, f"SELECT media_id FROM {cur}")
    pipe.con.execute(
        f"CREATE TEMP TABLE selection AS SELECT {', '.join(cols)}, "
        f"row_number() OVER (ORDER BY {rank_order(r.ascending, 'f.')}) AS rank "
        f"FROM {cur} AS f JOIN media AS m USING (media_id) "
        f"LEFT JOIN ({labels}) AS pl USING (media_id) {pipe.split_join}",
        p.values,
    )
    if r.split:
        pipe.report_leakage("selection")


def select(
    ex: Export,
    recipe: Recipe | None = None,
    *,
    where: str | Sequence[str] | None = None,
    labels: str | Sequence[str] | None = None,
    all_labels: bool | None = None,
    no_labels: str | Sequence[str] | None = None,
    label_source: str | None = None,
    tags: str | Sequence[str] | None = None,
    no_tags: str | Sequence[str] | None = None,
    media_type: str | None = None,
    clusters: str | Sequence[str] | None = None,
    exclude_issues: str | Sequence[str | IssueGate] | None = None,
    exclude_object_issues: str | Sequence[str | IssueGate] | None = None,
    dedupe: float | str | None = None,
    keep: str | None = None,
    per_cluster: int | None = None,
    per_video: int | None = None,
    top: int | None = None,
    by: str | None = None,
    ascending: bool | None = None,
    sample: int | None = None,
    stratify: str | None = None,
    split: str | Mapping[str, float] | None = None,
    group: str | None = None,
    seed: int | None = None,
    keep_removed: bool = True,
) -> Selection:
    """Pick a subset of ``ex``'s media by rules applied in a fixed order: filters ->
    issue gates -> dedupe -> caps -> top/sample -> split (see the README).

    Each argument left None takes its value from ``recipe`` (or the default). Filters:
    ``where`` (SQL predicates over ``media``, ANDed), ``labels`` (any of; ``all_labels``
    for all of), ``no_labels``, ``label_source``, ``tags``, ``no_tags``, ``media_type``,
    ``clusters``. Gates: ``exclude_issues`` / ``exclude_object_issues`` (``"blur"`` or
    ``"blur>=0.8"``). ``dedupe``: a duplicate level, ``"min"`` or ``"max"``, keeping one
    image per group by ``keep`` (uniqueness|resolution|labelled|first). Caps:
    ``per_cluster``, ``per_video``. ``top`` N by ``by`` (default uniqueness_score,
    descending unless ``ascending``); ``sample`` N with ``seed``, proportional per
    ``stratify`` stratum (``"label"``: the primary label, or a media column). ``split``:
    ``{"train": .8, "val": .2}`` by ``group`` (duplicates[@LEVEL]|cluster|video|none).
    ``keep_removed=False`` skips recording the dropped rows (faster on huge exports).

    Returns:
        A :class:`Selection` (close it, or use ``with``, when done).

    Raises:
        SelectionError: a rule names something the export does not have, or is malformed.
    """
    given = {k: v for k, v in locals().items() if k not in ("ex", "recipe", "keep_removed")}
    rec = Recipe.build(recipe, **given)
    return run(ex, rec, keep_removed=keep_removed)


def run(ex: Export, recipe: Recipe, *, keep_removed: bool = True) -> Selection:
    """Run ``recipe`` on ``ex`` (what :func:`select` does after merging its arguments)."""
    work = Path(tempfile.mkdtemp(prefix="vlanalyze-select-"))
    con = ex.duckdb()
    try:
        # Bounded memory on any export size: DuckDB spills to our own temp folder.
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("SET temp_directory = $dir", {"dir": str(work)})
        catalog = Catalog(con, ex.stored)
        pipe = Pipeline(
            con, recipe, catalog=catalog, rows=ex.counts["media"], keep_removed=keep_removed
        )
        pipe.run()
        _finish(pipe)
        info = _export_info(ex)
        return Selection(
            con, recipe, pipe.funnel, pipe.leakage, info, has_removed=keep_removed, work=work
        )
    except duckdb.Error as exc:
        _release(con, work)
        text = str(exc).strip()
        raise QueryError(f"selection failed: {text.splitlines()[0] if text else exc}") from None
    except BaseException:
        _release(con, work)
        raise


def _release(con: DuckDBPyConnection, work: Path) -> None:
    """Close ``con`` and remove its spill folder."""
    con.close()
    shutil.rmtree(work, ignore_errors=True)


def top(ex: Export, n: int, *, by: str = "uniqueness_score", ascending: bool = False) -> Selection:
    """The ``n`` rows with the highest ``by`` (lowest with ``ascending``), ties by media_id.

    The same as the export page's pandas recipe
    (``df.sort_values(by="uniqueness_score", ascending=False).head(n)``) with ties made
    deterministic. Raises SelectionError for an unknown column.
    """
    return select(ex, top=n, by=by, ascending=ascending)
