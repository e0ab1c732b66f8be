"""Write a plan's images: copies, reflinks and links, on worker threads, each atomic.

Links are made one system call each (a link never replaces anything); anything else,
and any link that meets a file, goes through :class:`~vlanalyze.materialize._copy.Copier`,
which replaces only files an earlier run wrote. Errors are worded for people here.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze._fs import TEMP_PREFIX, ProgressCallback
from vlanalyze.errors import Fix, MaterializeError
from vlanalyze.materialize._copy import Copier
from vlanalyze.materialize._plan import Plan
from vlanalyze.materialize._sources import LINK_MODES, folder_of, store_error, url_filesystem
from vlanalyze.materialize._state import appeared_error, link_target

__all__ = ["clear_temp_files", "write_images"]

_CHUNK = 512  # files per task handed to a worker


def write_images(
    plan: Plan,
    todo: pl.DataFrame,
    on_progress: ProgressCallback | None,
    workers: int | None,
    *,
    clear: bool,
) -> list[str]:
    """Write the images of ``todo`` (``clear``: remove first the temporary files killed
    runs left beside them)."""
    total = todo.height
    if total == 0:
        return []
    existing = _make_folders(plan.out, todo)
    if clear:
        clear_temp_files(plan.out, existing, todo["dest"])
    workers = workers or 2
    put = _linker(plan, todo) if plan.mode in LINK_MODES else None
    opener = _url_opener(todo, plan.storage_options)
    done = 0
    last = 0.0
    fell_back = threading.Event()

    def run(span: range) -> int:
        copier = Copier(plan.mode, url_opener=opener)
        try:
            if put is not None:
                put(copier, span)
                return len(span)
            rows = todo.slice(span.start, len(span)).select("kind", "source", "dest", "mtime_ns")
            for kind, source, dest, mtime_ns in rows.iter_rows():
                _put(copier, plan, kind, source, dest, mtime_ns)
        finally:
            copier.close()
            if copier.reflink_fell_back:
                fell_back.set()
        return len(span)

    spans = [range(i, min(i + _CHUNK, total)) for i in range(0, total, _CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n in pool.map(run, spans):
            done += n
            if on_progress and (time.monotonic() - last > 0.1 or done == total):
                last = time.monotonic()
                on_progress(done, total)
    if fell_back.is_set():
        return [f"reflinks are not supported in {plan.out}: files were copied instead"]
    if plan.mode == "reflink" and (todo["kind"] != "file").any():
        return ["reflinks share a file's extents: images from a ZIP or an object store "
                "were copied"]  # fmt: skip
    return []


def _linker(plan: Plan, todo: pl.DataFrame) -> Callable[[Copier, range], None]:
    """What makes the links of rows ``span``, one system call each: a link never
    replaces anything, so a destination taken meanwhile (an earlier run's out-of-date
    link) or any error goes to :func:`_put`, which replaces only our own files and
    words the error."""
    sources: list[str] = todo["source"].to_list()
    dests: list[str] = todo["dest"].to_list()
    targets: list[str] = todo.select(pl.lit(f"{plan.out}/") + pl.col("dest")).to_series().to_list()
    hard = plan.mode == "hardlink"
    out, absolute = plan.out, plan.absolute_links

    def link(copier: Copier, span: range) -> None:
        for i in span:
            try:
                if hard:
                    os.link(sources[i], targets[i])
                else:  # (a symlink to nothing would be made without a word)
                    os.stat(sources[i])
                    os.symlink(link_target(out, dests[i], sources[i], absolute), targets[i])
            except OSError:
                _put(copier, plan, "file", sources[i], dests[i], None)

    return link


_AGAIN = "run again to resume: files already written are kept"


def _put(copier: Copier, plan: Plan, kind: str, source: str, dest: str, mtime: int | None) -> None:
    target = plan.out / dest
    link = ""
    if plan.mode == "symlink":
        link = link_target(plan.out, dest, source, plan.absolute_links)
    try:
        if kind == "file":
            os.stat(source)  # gone since the plan: say so (a symlink would dangle)
        copier.put(kind, source, target, mtime, link, ours=dest in plan.previous)
    except FileExistsError:
        raise appeared_error(target) from None
    except OSError as exc:
        if exc.errno == errno.ENOENT and kind == "file" and not os.path.exists(source):
            raise MaterializeError(
                f"the image {source} is gone: it was there when the plan was made",
                hint="restore it, or plan again (a dry run lists what is missing)",
            ) from None
        if plan.mode == "hardlink" and exc.errno == errno.EXDEV:
            raise MaterializeError(
                f"cannot hardlink {source} into {plan.out}: another filesystem",
                fix=Fix("mode", "to copy instead", "copy"),
            ) from None
        raise MaterializeError(
            f"cannot write {target} from {source}: {exc.strerror or exc}", hint=_AGAIN
        ) from None
    except Exception as exc:
        if kind != "url" or isinstance(exc, MaterializeError):
            raise
        raise store_error(source, exc) from exc  # the store's own errors are not OSErrors


def _make_folders(out: Path, todo: pl.DataFrame) -> list[str]:
    """Create the destination folders; return those that were there already."""
    folders = todo.select(folder_of(pl.col("dest")).unique()).to_series()
    existing = []
    for folder in sorted(folders.to_list()):
        path = out / folder
        if path.is_dir():
            existing.append(folder)
            continue
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MaterializeError(f"cannot create {path}: {exc.strerror}") from None
    return existing


def clear_temp_files(out: Path, folders: list[str], dests: Iterable[str]) -> None:
    """Remove the temporary files an interrupted run left beside these destinations
    (only folders that existed before this run can hold any)."""
    left: dict[str, list[str]] = {}  # destination -> temporary files written for it
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        with os.scandir(out / folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") and TEMP_PREFIX in entry.name:
                    dest = prefix + entry.name[1:].split(TEMP_PREFIX, 1)[0]
                    left.setdefault(dest, []).append(entry.path)
    if left:  # (the destinations, often many, are read only then)
        for dest in left.keys() & set(dests):
            for path in left[dest]:
                os.unlink(path)


def _url_opener(todo: pl.DataFrame, options: dict[str, Any]) -> Any:
    urls = todo.filter(pl.col("kind") == "url")["source"]
    if urls.len() == 0:
        return None
    fs = url_filesystem(urls[0], options)
    return lambda url: fs.open(url, "rb")
