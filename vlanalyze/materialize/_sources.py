"""Where each selected image's bytes come from.

In order: the export's own ``images/`` (a folder, or a ZIP read in place), then any
extra exports (e.g. the images ``--fetch-missing`` pulled), then ``images_root``: each
``file_path`` mapped onto a local folder or an object-store URL (``s3://``, ``gs://``;
read through fsspec, an optional extra). Sources are stat-ed, never read, here.

A source is a URI a distributed engine can open too: an absolute path, an fsspec
chained ``zip://<member>::<archive>`` URL, or the object-store URL.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze.errors import Fix, MaterializeError, redact_url
from vlanalyze.materialize._zipsrc import zip_sources
from vlanalyze.query._export import Export
from vlanalyze.query._open import open_export

__all__ = [
    "LINK_MODES",
    "SOURCE_SCHEMA",
    "check_mode",
    "folder_of",
    "is_url",
    "resolve_sources",
    "store_error",
    "url_filesystem",
]

LINK_MODES = ("hardlink", "symlink")
SOURCE_SCHEMA = {
    "media_id": pl.String,
    "source": pl.String,
    "kind": pl.String,  # file | zip | url
    "bytes": pl.Int64,
    "mtime_ns": pl.Int64,
    "dev": pl.Int64,  # st_dev of a file source (for hardlinks), else null
}

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(root: str) -> bool:
    """True for ``s3://...``-like roots (not ``file://``)."""
    return bool(_URL.match(root)) and not root.startswith("file://")


def resolve_sources(
    export: Export,
    media: pl.DataFrame,
    *,
    extra: Sequence[Export | str | os.PathLike[str]] = (),
    images_root: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    mode: str = "copy",
) -> pl.DataFrame:
    """A SOURCE_SCHEMA row for every item of ``media`` (media_id, file_path) found.

    Links (``mode`` hardlink or symlink, which copy no bytes): local files come without
    size and mtime, found by listing their folders where that is cheaper than a stat per
    file; a hard link's source that is a symlink is the file it points to.
    """
    found = [_from_export(export, media, mode)]
    for other in extra:
        other_ex = other if isinstance(other, Export) else open_export(other)
        found.append(_from_export(other_ex, media, mode))
    if images_root is not None:
        root = os.fspath(images_root)
        if is_url(root):
            found.append(_from_url(root, media, storage_options or {}))
        else:
            found.append(_from_folder(Path(root), media, mode))
    if len(found) == 1:
        return found[0]
    return pl.concat(found, how="vertical").unique("media_id", keep="first", maintain_order=True)


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SOURCE_SCHEMA)


def _from_export(export: Export, media: pl.DataFrame, mode: str) -> pl.DataFrame:
    paths = export.images.paths.join(media.select("media_id"), on="media_id", how="semi")
    if paths.height == 0:
        return _frame([])
    if export.source.member is not None:
        pairs = list(zip(paths["media_id"], paths["image_path"], strict=True))
        return _frame(zip_sources(export.root, export.source.zip_prefix, pairs))
    root = os.path.abspath(export.root)
    if mode not in LINK_MODES:
        return _stat_files(root, paths.rows())
    # Links need no size: the files are those the export listed when it was opened
    # (one removed since fails its link with a clear error); a stat per folder gives
    # their device.
    found = _on_devices(root, paths.select("media_id", rel="image_path"))
    return _resolved(found, root, export.images.links) if mode == "hardlink" else found


def folder_of(rel: pl.Expr) -> pl.Expr:
    """The folder part of a relative posix path ("" for none)."""
    inner = rel.str.contains("/", literal=True)
    return pl.when(inner).then(rel.str.replace(r"/[^/]*$", "")).otherwise(pl.lit(""))


def _on_devices(root: str, wanted: pl.DataFrame) -> pl.DataFrame:
    """SOURCE_SCHEMA rows for files ``root/<rel>`` of ``wanted`` (media_id, rel) known
    to be there: no size or mtime, the device of their folder (those in a folder that
    is gone are left out)."""
    wanted = wanted.with_columns(folder=folder_of(pl.col("rel")))
    devices: dict[str, list[Any]] = {"folder": [], "dev": []}
    for folder in wanted["folder"].unique().to_list():
        try:
            dev = os.stat(f"{root}/{folder}" if folder else root).st_dev
        except OSError:
            continue
        devices["folder"].append(folder)
        devices["dev"].append(dev)
    on = pl.DataFrame(devices, schema={"folder": pl.String, "dev": pl.Int64})
    return _linkable(root, wanted.join(on, on="folder", how="inner", maintain_order="left"))


def _resolved(found: pl.DataFrame, root: str, links: frozenset[str]) -> pl.DataFrame:
    """``found`` with each source that is a symlink replaced by the file it points to
    (a hard link to the symlink itself would dangle where its relative target does
    not resolve), and that file's device; sources that resolve to nothing are left out."""
    if not links:
        return found
    linked = found.filter(pl.col("source").is_in([f"{root}/{rel}" for rel in links]))
    real: dict[str, list[Any]] = {"source": [], "real": [], "real_dev": []}
    for source in linked["source"].to_list():
        path = os.path.realpath(source)
        try:
            st = os.stat(path)
        except OSError:
            st = None
        real["source"].append(source)
        real["real"].append(path if st is not None and stat.S_ISREG(st.st_mode) else None)
        real["real_dev"].append(None if st is None else st.st_dev)
    schema = {"source": pl.String, "real": pl.String, "real_dev": pl.Int64}
    table = found.join(pl.DataFrame(real, schema), on="source", how="left", maintain_order="left")
    gone = pl.col("source").is_in(real["source"]) & pl.col("real").is_null()
    return table.filter(~gone).select(
        "media_id",
        source=pl.coalesce("real", "source"),
        kind="kind",
        bytes="bytes",
        mtime_ns="mtime_ns",
        dev=pl.coalesce("real_dev", "dev"),
    )


def _linkable(root: str, found: pl.DataFrame) -> pl.DataFrame:
    """SOURCE_SCHEMA rows, without size or mtime, for ``found`` (media_id, rel, dev)."""
    return found.select(
        "media_id",
        source=pl.lit(f"{root}/") + pl.col("rel"),
        kind=pl.lit("file"),
        bytes=pl.lit(None, pl.Int64),
        mtime_ns=pl.lit(None, pl.Int64),
        dev="dev",
    )


def _local_files(root: str, wanted: pl.DataFrame, mode: str) -> pl.DataFrame:
    """The regular files ``root/<rel>`` of ``wanted`` (media_id, rel)."""
    if mode not in LINK_MODES:
        return _stat_files(root, wanted.rows())
    wanted = wanted.with_columns(folder=folder_of(pl.col("rel")))
    listing: dict[str, list[Any]] = {"rel": [], "dev": []}
    links: set[str] = set()
    big: list[str] = []
    for folder, count in wanted.group_by("folder").len().iter_rows():
        if not _list_folder(root, folder, count, listing, links):
            big.append(folder)
    listed = pl.DataFrame(listing, schema={"rel": pl.String, "dev": pl.Int64})
    found = _linkable(root, wanted.join(listed, on="rel", how="inner"))
    if mode == "hardlink":
        found = _resolved(found, root, frozenset(links))
    if not big:
        return found
    rest = wanted.filter(pl.col("folder").is_in(big)).select("media_id", "rel").rows()
    stated = _stat_files(root, rest)
    if mode == "hardlink":  # (stat follows a symlink: tell them apart, as the listing does)
        stated_links = frozenset(rel for _id, rel in rest if os.path.islink(f"{root}/{rel}"))
        stated = _resolved(stated, root, stated_links)
    return pl.concat([found, stated], how="vertical")


def _list_folder(
    root: str, folder: str, count: int, listing: dict[str, list[Any]], links: set[str]
) -> bool:
    """Append the regular files of ``root/folder`` to ``listing`` (rel, dev), and those
    that are symlinks to ``links``: one listing for the ``count`` files wanted there (no
    size or mtime; the folder's device). False (and nothing appended) when the folder
    is much larger: a stat each is cheaper then."""
    path = f"{root}/{folder}" if folder else root
    try:
        st = os.stat(path)
    except OSError:
        return True  # no folder: none of the files is there
    # A directory's size grows with its entries (ext4: 8 bytes + the name, per entry).
    if st.st_size > 4096 + 256 * count:
        return False
    prefix = f"{folder}/" if folder else ""
    try:
        with os.scandir(path) as entries:  # is_file follows symlinks, as stat does
            files = [entry for entry in entries if entry.is_file()]
    except OSError:
        return True
    rels = [prefix + entry.name for entry in files]
    links.update(prefix + entry.name for entry in files if entry.is_symlink())
    listing["rel"].extend(rels)
    listing["dev"].extend([st.st_dev] * len(rels))
    return True


def _stat_files(root: str, pairs: list[tuple[str, str]]) -> pl.DataFrame:
    """Stat ``root/<rel>`` for each (media_id, rel); keep the regular files."""
    ids: list[str] = []
    sources: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    devs: list[int] = []
    for media_id, rel in pairs:
        path = f"{root}/{rel}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            ids.append(media_id)
            sources.append(path)
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
            devs.append(st.st_dev)
    columns: dict[str, list[Any]] = {"media_id": ids, "source": sources}
    columns |= {"kind": ["file"] * len(ids), "bytes": sizes, "mtime_ns": mtimes, "dev": devs}
    return pl.DataFrame(columns, schema=SOURCE_SCHEMA)


def _safe_rel(file_path: str | None) -> str | None:
    """``file_path`` as a relative posix path that stays under its root, or None."""
    if not file_path:
        return None
    rel = posixpath.normpath(file_path.replace("\\", "/").lstrip("/"))
    if rel in (".", "..") or rel.startswith("../") or re.match(r"^[A-Za-z]:", rel):
        return None
    return rel


def _from_folder(root: Path, media: pl.DataFrame, mode: str) -> pl.DataFrame:
    if not root.is_dir():
        raise MaterializeError(
            f"the images root {root} is not a folder",
            hint="give the folder the dataset's file_paths are relative to",
        )
    ids: list[str] = []
    rels: list[str] = []
    for media_id, file_path in zip(media["media_id"], media["file_path"], strict=True):
        rel = _safe_rel(file_path)
        if rel is not None:
            ids.append(media_id)
            rels.append(rel)
    wanted = pl.DataFrame(
        {"media_id": ids, "rel": rels}, schema={"media_id": pl.String, "rel": pl.String}
    )
    return _local_files(os.path.abspath(root), wanted, mode)


def url_filesystem(url: str, storage_options: Mapping[str, Any]) -> Any:
    """The fsspec filesystem for ``url``; a clear error when the extra is not installed."""
    try:
        import fsspec  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise MaterializeError(
            f"reading images from {url} needs fsspec",
            hint="pip install 'vlanalyze[cloud]' (fsspec and s3fs; gcsfs for gs://)",
        ) from None
    protocol = url.split("://", 1)[0]
    try:
        return fsspec.filesystem(protocol, **dict(storage_options))
    except (ImportError, ValueError) as exc:
        raise MaterializeError(
            f"cannot read {protocol}:// URLs: {exc}",
            hint="pip install 'vlanalyze[cloud]' (s3fs for s3://, gcsfs for gs://)",
        ) from None


def _from_url(root: str, media: pl.DataFrame, options: Mapping[str, Any]) -> pl.DataFrame:
    fs = url_filesystem(root, options)
    protocol, rest = root.split("://", 1)
    base = rest.rstrip("/")
    try:
        listing: dict[str, dict[str, Any]] = fs.find(base, detail=True)
    except Exception as exc:
        # The store's client raises its own errors (botocore's EndpointConnectionError,
        # NoCredentialsError, ClientError...), not only OSError: every one means "cannot
        # list", and is worded here rather than shown as a traceback.
        raise store_error(root, exc, listing=True) from exc
    by_key = {name[len(base) + 1 :]: info for name, info in listing.items()}
    rows = []
    for media_id, file_path in zip(media["media_id"], media["file_path"], strict=True):
        rel = _safe_rel(file_path)
        info = by_key.get(rel) if rel is not None else None
        if info is None:
            continue
        rows.append(
            {
                "media_id": media_id,
                "source": f"{protocol}://{base}/{rel}",
                "kind": "url",
                # None where the store gives none: a 0 would be recorded as the size
                # of the copy, and the copy then look edited to the next run.
                "bytes": None if info.get("size") is None else int(info["size"]),
                "mtime_ns": _url_mtime_ns(info),
                "dev": None,
            }
        )
    return _frame(rows)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def store_error(url: str, exc: BaseException, *, listing: bool = False) -> MaterializeError:
    """The error for a failure to list or read ``url`` in an object store: its first line
    (URLs in it redacted), and where to look next."""
    lines = str(exc).strip().splitlines()
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), lines[0] if lines else "")
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    hint = "check the endpoint, the credentials and the URL"
    if url.startswith("s3://"):
        hint += " (AWS_ENDPOINT_URL, AWS_PROFILE or AWS_ACCESS_KEY_ID...)"
    return MaterializeError(
        f"cannot {'list' if listing else 'read'} {redact_url(url)}: {reason}", hint=hint
    )


def _url_mtime_ns(info: Mapping[str, Any]) -> int | None:
    stamp = info.get("LastModified") or info.get("mtime") or info.get("updated")
    if isinstance(stamp, dt.datetime):
        return int(stamp.timestamp()) * 1_000_000_000
    if isinstance(stamp, (int, float)):
        return int(stamp) * 1_000_000_000
    return None


def check_mode(table: pl.DataFrame, mode: str, out: Path, layout: str) -> None:
    """Refuse a link mode the sources of ``table`` cannot take: inside a ZIP or an
    object store, or (hard links) on another filesystem than ``out``."""
    if mode not in LINK_MODES or layout == "csv":
        return
    kinds = set(table["kind"].drop_nulls().unique())
    if kinds - {"file"}:
        where = "a ZIP" if "zip" in kinds else "an object store"
        raise MaterializeError(
            f"cannot {mode} images that are inside {where}",
            fix=Fix("mode", "to copy them", "copy"),
        )
    if mode == "hardlink":
        anchor = out
        while not anchor.exists():
            anchor = anchor.parent
        devices = set(table["dev"].drop_nulls().unique())
        if devices - {anchor.stat().st_dev}:
            raise MaterializeError(
                f"cannot hardlink into {out}: the images are on another filesystem",
                fix=Fix("mode", "to copy them instead", "copy"),
            )
