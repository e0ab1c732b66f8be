"""A selection to report on: read from the file ``vlanalyze select`` wrote (Parquet, CSV,
NDJSON, JSON), or taken from a :class:`vlanalyze.Selection` or a DataFrame.

What a report needs of it: the rows (``media_id`` and, when there, ``split``, ``label``,
``rank``), and how it was made where the source says so: a Parquet selection carries
its recipe (TOML), funnel and export in its key-value metadata (``vlanalyze.recipe``,
``vlanalyze.funnel``, ``vlanalyze.export``). Reads only; never writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import polars as pl

from vlanalyze.errors import SelectionError

KEY_RECIPE = "vlanalyze.recipe"
KEY_FUNNEL = "vlanalyze.funnel"
KEY_EXPORT = "vlanalyze.export"
_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
}


@runtime_checkable
class SelectionLike(Protocol):
    """What a report reads of a :class:`vlanalyze.Selection`."""

    @property
    def table(self) -> pl.DataFrame: ...

    @property
    def funnel(self) -> pl.DataFrame: ...


@dataclass(frozen=True)
class SelectionData:
    """A selection's rows and, where known, how it was made."""

    rows: pl.DataFrame
    name: str  # where it came from, for the page
    funnel: pl.DataFrame | None = None  # step, rows_in, rows_out, removed
    recipe: str | None = None  # TOML
    export: dict[str, Any] = field(default_factory=dict)
    reasons: pl.DataFrame | None = None  # step, reason, rows: why rows were removed


def load_selection(selection: object) -> SelectionData:
    """The selection given to :func:`vlanalyze.report`, whatever its form.

    Raises:
        SelectionError: the file cannot be read, or has no ``media_id`` column.
    """
    if isinstance(selection, pl.DataFrame):
        data = SelectionData(selection, "a DataFrame")
    elif isinstance(selection, SelectionLike):
        to_toml = getattr(getattr(selection, "recipe", None), "to_toml", None)
        data = SelectionData(
            selection.table,
            "a Selection",
            funnel=selection.funnel,
            recipe=str(to_toml()) if callable(to_toml) else None,
            export=dict(getattr(selection, "export", None) or {}),
            reasons=_reasons(selection),
        )
    elif isinstance(selection, (str, os.PathLike)):
        data = _read_file(Path(selection))
    else:
        raise TypeError(f"selection must be a path, a Selection or a DataFrame, not {selection!r}")
    if "media_id" not in data.rows.columns:
        raise SelectionError(
            f"the selection ({data.name}) has no media_id column",
            hint="columns: " + ", ".join(data.rows.columns[:20]),
        )
    rows = data.rows.with_columns(pl.col("media_id").cast(pl.String))
    if "split" in rows.columns:
        rows = rows.with_columns(pl.col("split").cast(pl.String))
    return SelectionData(rows, data.name, data.funnel, data.recipe, data.export, data.reasons)


def _reasons(selection: object) -> pl.DataFrame | None:
    """``step, reason, rows`` of a Selection that kept its removed rows, else None."""
    try:
        removed = getattr(selection, "removed", None)
    except ValueError:  # select(..., keep_removed=False)
        return None
    if not isinstance(removed, pl.DataFrame) or not {"step", "reason"} <= set(removed.columns):
        return None
    return (
        removed.group_by("step", "reason", maintain_order=True)
        .agg(rows=pl.len())
        .sort("rows", descending=True)
        .head(20)
    )


def _read_file(path: Path) -> SelectionData:
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise SelectionError(
            f"cannot tell the format of the selection {path} from its extension",
            hint="use one of " + ", ".join(_READERS),
        )
    try:
        if kind == "parquet":
            return _read_parquet(path)
        if kind in ("csv", "tsv"):
            rows = pl.read_csv(
                path,
                separator="," if kind == "csv" else "\t",
                infer_schema_length=10_000,
                schema_overrides={"media_id": pl.String, "split": pl.String},
            )
        elif kind == "ndjson":
            rows = pl.read_ndjson(path)
        else:
            rows = pl.read_json(path)
    except FileNotFoundError:
        raise SelectionError(f"no selection file at {path}") from None
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SelectionError(f"cannot read the selection {path}: {message}") from None
    return SelectionData(rows, path.name)


def _read_parquet(path: Path) -> SelectionData:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    frame = pl.from_arrow(table.replace_schema_metadata(None))
    assert isinstance(frame, pl.DataFrame)
    funnel = None
    if KEY_FUNNEL in meta:
        funnel = pl.DataFrame(
            json.loads(meta[KEY_FUNNEL]),
            schema={
                "step": pl.String,
                "rows_in": pl.Int64,
                "rows_out": pl.Int64,
                "removed": pl.Int64,
            },
        )
    export = json.loads(meta[KEY_EXPORT]) if KEY_EXPORT in meta else {}
    return SelectionData(
        frame,
        path.name,
        funnel=funnel,
        recipe=meta.get(KEY_RECIPE),
        export=export if isinstance(export, dict) else {},
    )
