"""Make the HTML report of an export (and of a selection): :func:`report`.

Aggregates with DuckDB (:mod:`._data`), draws with matplotlib (:mod:`._draw`), makes
thumbnails with Pillow (:mod:`._thumbs`), writes one file atomically. Every section is
bounded by a top-K stated on the page, so the page's size and the time to make it do
not grow with the export. Never prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from vlanalyze._fs import ProgressCallback, ensure_absent, write_text_atomic
from vlanalyze._version import __version__
from vlanalyze.errors import MaterializeError
from vlanalyze.query._export import Export
from vlanalyze.reporting import _data as data
from vlanalyze.reporting import _sections as sections
from vlanalyze.reporting._html import Tile, page
from vlanalyze.reporting._selection import SelectionData, load_selection
from vlanalyze.reporting._thumbs import WORKERS, Thumbnailer, thumbnail_cache


@dataclass(frozen=True)
class ReportLimits:
    """How much each section shows (the page states each)."""

    groups: int = 24  # duplicate groups
    members: int = 8  # members shown per duplicate group
    clusters: int = 16
    cluster_members: int = 12
    grid: int = 120  # chosen images of a selection
    labels: int = 15  # top labels


@dataclass(frozen=True)
class Report:
    """What :func:`report` wrote."""

    path: Path
    bytes: int
    level: float | None  # the duplicate level shown (None: the export has none)
    tiles: dict[str, int] = field(default_factory=dict)  # section id -> images shown
    thumbnails: int = 0  # distinct images with a thumbnail
    limits: ReportLimits = ReportLimits()


def report(
    ex: Export,
    out: str | os.PathLike[str],
    *,
    selection: object = None,
    dedupe: float | str | None = None,
    limits: ReportLimits | None = None,
    title: str | None = None,
    overwrite: bool = False,
    workers: int = WORKERS,
    on_progress: ProgressCallback | None = None,
) -> Report:
    """Write a self-contained HTML report of ``ex`` to ``out``.

    Args:
        ex: the opened export.
        out: the HTML file to write (atomically).
        selection: a selection to report on: a Selection, a DataFrame with a
            ``media_id`` column, or the file ``vlanalyze select`` wrote.
        dedupe: the duplicate level to show groups at: a threshold present in the
            export, ``"min"`` or ``"max"`` (default: the loosest, ``"min"``).
        limits: how much each section shows (:class:`ReportLimits`).
        title: the page title (default: the export's dataset name).
        overwrite: replace ``out`` if it exists.
        workers: threads making thumbnails.
        on_progress: called as ``(done, total)`` while thumbnails are made.

    Returns:
        A :class:`Report`: the path, its size, and how many images each section shows.

    Raises:
        SelectionError: no such duplicate level; the selection cannot be read.
        MaterializeError: ``out`` exists (without ``overwrite``) or cannot be written.
    """
    lim = limits or ReportLimits()
    target = Path(out)
    ensure_absent(target, overwrite=overwrite)
    sel = None if selection is None else load_selection(selection)
    found = _gather(ex, sel, dedupe, lim)
    tiles = _tiles(ex, found.details, workers, on_progress)
    body = [sections.overview(found.overview, ex)]
    shown: dict[str, int] = {}
    if found.dups is not None and found.level is not None:
        levels = found.overview.levels
        body.append(sections.duplicates(found.dups, found.level, levels, tiles, lim))
        shown["duplicates"] = found.dups.members.height
    body.append(sections.clusters(found.clusters, tiles, lim))
    shown["clusters"] = found.clusters.members.height
    if sel is not None and found.stats is not None:
        body.append(sections.selection(sel, found.stats, ex, tiles, lim))
        shown["selection"] = len(found.stats.grid)
    heading = title or str(ex.info.block.get("dataset") or ex.source.path.name)
    footer = sections.footer(lim, __version__)
    text = page(f"vlanalyze report: {heading}", str(ex.source.path), body, footer)
    try:
        write_text_atomic(target, text, overwrite=overwrite)
    except OSError as exc:
        raise MaterializeError(f"cannot write {target}: {exc.strerror or exc}") from None
    with_thumb = sum(1 for t in tiles.values() if t.thumb is not None)
    return Report(target, len(text.encode()), found.level, shown, with_thumb, lim)


@dataclass(frozen=True)
class _Found:
    """Everything the page shows, before thumbnails and HTML."""

    overview: data.Overview
    level: float | None
    dups: data.Groups | None
    clusters: data.Groups
    stats: data.SelectionStats | None
    details: pl.DataFrame  # of every media item shown


def _gather(
    ex: Export, sel: SelectionData | None, dedupe: float | str | None, lim: ReportLimits
) -> _Found:
    """Every aggregation, on one DuckDB connection over the export's views."""
    with closing(ex.duckdb()) as con:
        ov = data.overview(con, ex.counts, top_labels=lim.labels)
        level = data.resolve_level(ov.levels, dedupe)
        dups = None
        if level is not None:
            dups = data.duplicate_groups(con, level, groups=lim.groups, members=lim.members)
        cl = data.clusters(con, groups=lim.clusters, members=lim.cluster_members)
        stats = None
        if sel is not None:
            stats = data.selection_stats(con, sel.rows, grid=lim.grid, top_labels=8)
        details = data.items(con, _ids(dups, cl, stats))
    return _Found(ov, level, dups, cl, stats, details)


def _ids(dups: data.Groups | None, cl: data.Groups, stats: data.SelectionStats | None) -> list[str]:
    ids: list[str] = cl.members["media_id"].to_list()
    if dups is not None:
        ids += dups.members["media_id"].to_list()
    if stats is not None:
        ids += stats.grid
    return sorted(set(ids))


def _tiles(
    ex: Export, details: pl.DataFrame, workers: int, on_progress: ProgressCallback | None
) -> dict[str, Tile]:
    """A tile (thumbnail and hover text) for every media item shown."""
    in_zip = ex.source.zip_prefix if ex.source.member is not None else None
    maker = Thumbnailer(ex.root, thumbnail_cache(ex.cache_path), in_zip=in_zip)
    paths: Sequence[str] = [p for p in details["image_path"].to_list() if p]
    thumbs = maker.many(paths, workers=workers, on_progress=on_progress)
    return {
        row["media_id"]: Tile(
            media_id=row["media_id"],
            file_path=row["file_path"],
            url=row["url"],
            score=row["uniqueness_score"],
            labels=row["labels"] or [],
            thumb=thumbs.get(row["image_path"]) if row["image_path"] else None,
        )
        for row in details.iter_rows(named=True)
    }
