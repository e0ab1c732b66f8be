"""Get an export onto disk: start (or resume) a task, wait, download, extract, record.

This module composes :mod:`vlanalyze.fetch._client`, :mod:`vlanalyze.fetch._download` and
:mod:`vlanalyze.fetch._archive`; it adds the provenance file. It never prints: progress
goes through the callbacks. Reading a selection file is the materialize layer's job
(:func:`vlanalyze.materialize._selection.read_media_ids`): this takes a list of ids.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlanalyze._fs import ProgressCallback, ensure_empty_folder, lock_fd, write_text_atomic
from vlanalyze._metadata import METADATA_NAMES, READ_ORDER, info_from_json_head, read_export_info
from vlanalyze._version import __version__
from vlanalyze.errors import ArchiveError, DownloadError, SelectionError, VLAnalyzeError
from vlanalyze.fetch._archive import extract_archive
from vlanalyze.fetch._client import ExportTask, VisualLayerClient
from vlanalyze.fetch._download import download_file

__all__ = ["PROVENANCE_FILE", "PulledExport", "archive_path", "pull_export"]

PROVENANCE_FILE = "vlanalyze-provenance.json"


@dataclass(frozen=True)
class PulledExport:
    """What :func:`pull_export` wrote. Path-like: ``open_export(result)`` opens it, and
    ``result / "metadata.json"`` is a file in it.

    Attributes:
        path: The export folder (absolute).
        media_count: How many media items its metadata holds (None if it cannot tell).
        warnings: What the caller should know, e.g. fewer media came back than were asked
            for (each a sentence; also in the provenance file).
    """

    path: Path
    media_count: int | None
    warnings: tuple[str, ...] = ()

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, name: str | os.PathLike[str]) -> Path:
        """``result / "metadata.json"``, as with the folder's path."""
        return self.path / name


def archive_path(dest: str | os.PathLike[str], task_id: str) -> Path:
    """Where the ZIP of ``task_id`` is downloaded: a stable hidden sibling of ``dest``.

    Stable, so that an interrupted download resumes when the fetch is run again with
    the same task id.
    """
    dest = Path(os.path.abspath(dest))
    return dest.parent / f".{dest.name}.{task_id}.zip"


STALE_PART_SECONDS = 24 * 3600
"""A download of another task untouched (and unlocked) this long was abandoned."""


def _clean_stale_parts(dest: Path, *, keep: Path) -> list[Path]:
    """Remove abandoned partial downloads of other tasks beside ``dest``: older than a
    day and not locked by a live download. ``keep`` (this task's, to resume) stays."""
    removed = []
    now = time.time()
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.zip.part"):
        if part == keep.with_name(keep.name + ".part"):
            continue
        try:
            if now - part.stat().st_mtime < STALE_PART_SECONDS:
                continue
            fd = os.open(part, os.O_RDONLY)
        except OSError:
            continue
        try:
            if lock_fd(fd, wait=False):
                part.unlink()
                removed.append(part)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def pull_export(
    client: VisualLayerClient,
    dataset_id: str,
    dest: str | os.PathLike[str],
    *,
    export_format: str = "json",
    include_images: bool = False,
    media_ids: Sequence[str] | None = None,
    cluster_id: str | None = None,
    exclude_media_ids: Sequence[str] = (),
    task_id: str | None = None,
    overwrite: bool = False,
    poll_interval: float = 2.0,
    timeout: float = 3600.0,
    on_poll: Callable[[ExportTask], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_step: Callable[[str], None] | None = None,
) -> PulledExport:
    """Export a dataset and extract it into ``dest``: start, wait, download, extract.

    Args:
        client: The API client.
        dataset_id: The dataset to export.
        dest: The folder to create (must be absent or empty unless ``overwrite``).
        export_format: ``"json"`` or ``"parquet"``.
        include_images: Also export the images (into ``dest/images``).
        media_ids: Export only these media (a selective export).
        cluster_id: Export only this cluster (a selective export).
        exclude_media_ids: With ``cluster_id``: media to leave out.
        task_id: Resume an export task that was already started, instead of a new one.
        overwrite: Replace a non-empty ``dest`` (only once the new export is complete).
        poll_interval: First wait between status polls, in seconds (it backs off).
        timeout: Give up polling after this many seconds.
        on_poll: Called with each polled :class:`ExportTask`.
        on_progress: Called with ``(bytes_done, total)`` while downloading, then again
            from 0 while extracting (``total`` is then the uncompressed size).
        on_step: Called with ``"download"``, then ``"extract"``, as each step starts.

    Returns:
        A :class:`PulledExport`: ``dest`` (absolute), its media count, and warnings
        (fewer media than the ``media_ids`` asked for).

    Raises:
        SelectionError: A selective export came back with no media at all (nothing is
            extracted).
        MaterializeError: ``dest`` is not empty and ``overwrite`` is false.
        APIError: The server refused, the task failed, or polling timed out.
        DownloadError: The download could not be completed.
        ArchiveError: The archive is corrupt or hostile.
    """
    dest = Path(os.path.abspath(dest))
    # Checked before starting: an export can take long, so fail before, not after.
    ensure_empty_folder(dest, overwrite=overwrite)
    request = {
        "export_format": export_format,
        "include_images": include_images,
        "media_ids": list(media_ids or ()),
        "cluster_id": cluster_id,
        "exclude_media_ids": list(exclude_media_ids),
    }
    resumed = task_id is not None
    if task_id is None:
        started = _start(client, dataset_id, request)
        task_id = started.id
        if on_poll is not None:
            on_poll(started)
    task = client.wait_for_export(
        dataset_id, task_id, interval=poll_interval, timeout=timeout, on_poll=on_poll
    )
    if on_step is not None:
        on_step("download")
    _clean_stale_parts(dest, keep=archive_path(dest, task.id))
    zip_path = _download(client, task, dest, on_progress)
    if resumed:  # today's flags say nothing of a task started earlier: read its archive
        request = _request_of_archive(zip_path)
    try:
        count = _count_media(zip_path)
        warnings = _check_count(count, dataset_id, request)
        if on_step is not None:
            on_step("extract")
        extract_archive(zip_path, dest, overwrite=overwrite, on_progress=on_progress)
    except (SelectionError, ArchiveError):
        # An empty export, or a corrupt or hostile archive: nothing here to resume (a
        # second run downloads it again), so the hidden archive must not stay behind.
        zip_path.unlink(missing_ok=True)
        raise
    _write_provenance(dest, client, task, request, _sha256(zip_path), count, warnings)
    zip_path.unlink()
    return PulledExport(dest, count, warnings)


def _count_media(archive: Path) -> int | None:
    """How many media items the downloaded archive holds, by its metadata; None if unknown.

    A Parquet export's row count; a JSON export's ``info.total_media_items`` (read from
    the head of the file, never the items: Visual Layer writes the count of the items
    in the file there, as the stand-in does).
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            found = [
                n
                for n in zf.namelist()
                if n.rsplit("/", 1)[-1] in METADATA_NAMES and n.count("/") <= 1
            ]
            if not found:
                return None
            member = min(
                found, key=lambda n: (n.count("/"), READ_ORDER.index(n.rsplit("/", 1)[-1]))
            )
            with zf.open(member) as fh:
                if member.endswith(".parquet"):
                    import pyarrow.parquet as pq

                    return int(pq.ParquetFile(fh).metadata.num_rows)
                total = info_from_json_head(fh).get("total_media_items")
    except (OSError, ValueError, zipfile.BadZipFile):
        return None  # the extraction that follows says what is wrong with the archive
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _check_count(count: int | None, dataset_id: str, request: dict[str, Any]) -> tuple[str, ...]:
    """Refuse a selective export that came back empty; warn when media are missing."""
    asked, cluster = request["media_ids"], request["cluster_id"]
    if count is None or not (asked or cluster):
        return ()
    if count == 0:
        parts = []
        if asked:
            shown = ", ".join(asked[:3]) + (", ..." if len(asked) > 3 else "")
            parts.append(f"{len(asked)} media id{'s' if len(asked) != 1 else ''} ({shown})")
        if cluster:
            parts.append(f"cluster {cluster}")
        raise SelectionError(
            f"the export of dataset {dataset_id} holds no media: {' and '.join(parts)} "
            "matched nothing",
            hint="check the ids (in Visual Layer's URLs) and that they belong to this dataset",
        )
    if asked and not cluster and count < len(asked):
        missing = len(asked) - count
        return (
            f"asked for {len(asked)} media, the export holds {count}: {missing} of the ids "
            f"are not in dataset {dataset_id}",
        )
    return ()


def _start(client: VisualLayerClient, dataset_id: str, request: dict[str, Any]) -> ExportTask:
    common = {
        "export_format": request["export_format"],
        "include_images": request["include_images"],
    }
    if request["media_ids"] or request["cluster_id"]:
        return client.start_selective_export(
            dataset_id,
            media_ids=request["media_ids"],
            cluster_id=request["cluster_id"],
            exclude_media_ids=request["exclude_media_ids"],
            **common,
        )
    return client.start_export(dataset_id, **common)


def _download(
    client: VisualLayerClient, task: ExportTask, dest: Path, on_progress: ProgressCallback | None
) -> Path:
    def fresh_url() -> str:
        # Presigned URLs expire; polling the status again yields a fresh one.
        uri = client.export_status(task.dataset_id, task.id).download_uri
        return client.resolve_url(uri or "")

    try:
        return download_file(
            client,
            client.resolve_url(task.download_uri or ""),
            archive_path(dest, task.id),
            on_progress=on_progress,
            refresh_url=fresh_url,
            verify_zip=True,
            sleep=client.sleep,
        )
    except DownloadError as exc:
        resume = f"to resume this export, pass task_id={task.id!r} (--task-id {task.id})"
        hint = f"{exc.hint}; {resume}" if exc.hint else resume
        raise DownloadError(exc.message, hint=hint) from None


def _request_of_archive(zip_path: Path) -> dict[str, Any]:
    """What a resumed task was asked for, as far as its archive shows (the server does
    not say): its format and whether it holds images; the selection is unknown."""
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    base = [n.rsplit("/", 1)[-1] for n in names]
    return {
        "export_format": "parquet" if "metadata.parquet" in base else "json",
        "include_images": any(n.startswith("images/") or "/images/" in n for n in names),
        "media_ids": None,
        "cluster_id": None,
        "exclude_media_ids": None,
        "resumed_task": True,
    }


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _write_provenance(
    dest: Path,
    client: VisualLayerClient,
    task: ExportTask,
    request: dict[str, Any],
    sha256: str,
    media_count: int | None,
    warnings: tuple[str, ...],
) -> None:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record = {
        "dataset_id": task.dataset_id,
        "task_id": task.id,
        "base_url": client.base_url,
        "request": request,
        "export_time": _export_time(dest),
        "task_created_at": task.created_at,
        "fetched_at": now,
        "entities_count": media_count,  # from the metadata; None when it cannot tell
        "warnings": list(warnings),
        "archive_sha256": sha256,
        "vlanalyze_version": __version__,
    }
    # An archive that holds a file of this name is the export's, and ours describes it.
    write_text_atomic(dest / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n", overwrite=True)


def _export_time(dest: Path) -> str | None:
    """The export's own ``info.export_time``; None when the metadata does not say."""
    try:
        value = read_export_info(dest).get("export_time")
    except (VLAnalyzeError, OSError, ValueError):
        return None
    return str(value) if value is not None else None
