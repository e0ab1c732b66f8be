"""Open an export: find its metadata, reuse or build its cache, return an :class:`Export`.

``open_export`` finds the metadata (:mod:`vlanalyze.query._source`), takes the current
cache build of it or builds one (:mod:`vlanalyze.query._cache`,
:mod:`vlanalyze.query._normalize`), and wraps that snapshot in an
:class:`~vlanalyze.query._export.Export`. It never writes outside the cache root.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from vlanalyze._fs import ProgressCallback
from vlanalyze.errors import CacheError, ExportFormatError, Fix, QueryError
from vlanalyze.query import _cache as cache_mod
from vlanalyze.query import _schema as schema
from vlanalyze.query._cache import Manifest, Snapshot
from vlanalyze.query._export import Export
from vlanalyze.query._source import Source, copy_member, find_source
from vlanalyze.query._sql import Doing, map_exceptions

_SUMMARY_MEMORY = "512MB"
_ELSEWHERE = Fix("cache_dir", "to put the cache elsewhere", None, prefix="free disk space, or ")


def open_export(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    on_progress: ProgressCallback | None = None,
    chunk_bytes: int | None = None,
    batch_bytes: int | None = None,
    head_bytes: int | None = None,
) -> Export:
    """Open the export at ``path`` (a folder, the downloaded ZIP, or a metadata file).

    Args:
        path: the export folder, its ZIP, ``metadata.json`` or ``metadata.parquet``.
        cache_dir: the cache root: each export gets its own folder under it, keyed on
            its resolved metadata file (default: ``$VLANALYZE_CACHE_DIR``, else
            ``.vlanalyze-cache`` beside the export, or the user cache folder where that
            is read-only).
        refresh: rebuild the cache even if it is up to date.
        on_progress: called as ``(done, total)`` while the cache is built.
        chunk_bytes: tuning, JSON only: bytes of media items per chunk (default 64 MiB).
        batch_bytes: tuning, JSON only: bytes per batch where a file is read item by
            item (default 48 MiB).
        head_bytes: tuning, JSON only: read size while finding the items (default 4 MiB).
            Memory grows, and per-batch overhead shrinks, with each.

    Returns:
        The opened :class:`Export`.

    Raises:
        ExportFormatError: the metadata is missing, malformed or not an export.
        ArchiveError: the ZIP is corrupt or holds no metadata.
        CacheError: the cache folder cannot be read or written.
    """
    source = find_source(path)
    tuning = {"chunk_bytes": chunk_bytes, "batch_bytes": batch_bytes, "head_bytes": head_bytes}
    sizes = {k: v for k, v in tuning.items() if v is not None}
    root = cache_mod.cache_root(source.metadata.resolve(), cache_dir)
    doing = Doing(
        f"building the cache of {source.path} in {root}",
        error=ExportFormatError,
        space_error=CacheError,
        space_fix=_ELSEWHERE,
        subject=str(source.path),
    )
    with map_exceptions(doing):
        snapshot, built = _snapshot(source, root, refresh, on_progress, sizes)
        export = Export(source, snapshot)
        if built:
            from vlanalyze.query._summary import summarize

            # Kept with the build, so that `info` on a cached export answers at once (#11),
            # in a memory bound (unbounded: 1.7 GB at 1M dense items, bounded: 0.57 GB
            # and 10% faster).
            with suppress(QueryError), export._bounded(_SUMMARY_MEMORY):
                summarize(export)  # if it fails here, `info` computes it (or says why)
        return export


def _snapshot(
    source: Source,
    root: Path,
    refresh: bool,
    on_progress: ProgressCallback | None,
    sizes: dict[str, int],
) -> tuple[Snapshot, bool]:
    """The current cache build of ``source`` under ``root``, built first if need be.

    Returns:
        The snapshot, and whether this call built it.
    """
    entry = cache_mod.entry_folder(root, source.key, source.metadata.name)
    fingerprint = source.fingerprint()
    snapshot = None if refresh else cache_mod.open_current(entry, fingerprint)
    if snapshot is not None:
        cache_mod.tidy(entry, snapshot.path)
        return snapshot, False
    built = cache_mod.build(
        entry,
        fingerprint,
        lambda tmp: _fill(source, tmp, fingerprint, on_progress, sizes),
        refresh=refresh,
    )
    return built, True


def _fill(
    source: Source,
    tmp: Path,
    fingerprint: dict[str, Any],
    on_progress: ProgressCallback | None,
    tuning: dict[str, int],
) -> Manifest:
    from vlanalyze.query._infotable import write_info_table
    from vlanalyze.query._jsonchunks import ChunkSizes
    from vlanalyze.query._normalize import normalize_json, normalize_parquet

    sizes = ChunkSizes(**tuning)
    metadata = copy_member(source, tmp) if source.member else source.metadata
    normalize = normalize_json if source.format == "json" else normalize_parquet
    done = normalize(metadata, tmp, on_progress=on_progress, sizes=sizes)
    if metadata != source.metadata:
        metadata.unlink()
    write_info_table(tmp, done.top_level, fmt=source.format, source=str(source.path))
    counts = {**done.counts, "info": 1}
    return Manifest(
        fingerprint, source.format, {t: counts[t] for t in schema.TABLES}, done.top_level
    )
