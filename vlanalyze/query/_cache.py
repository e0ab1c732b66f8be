"""The Parquet cache of an export's tidy tables: where it lives, when to trust it, how
to build it atomically.

A cache is a folder holding one sub-folder of Parquet parts per table and a
``manifest.json`` written last. It is trusted only while the manifest's fingerprint
(path, size and mtime of the metadata file) matches; otherwise it is rebuilt. A build
goes into a temporary sibling folder that is renamed into place only when complete,
so an interrupted build never leaves a cache a later run would trust.

It never touches a folder it did not create: a cache path that exists without our
manifest is an error, not something to delete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlanalyze._fs import make_temp_folder, replace_folder, write_text_atomic
from vlanalyze._version import __version__
from vlanalyze.errors import CacheError, Fix
from vlanalyze.query import _schema as schema

if TYPE_CHECKING:
    from vlanalyze.query._source import Source

CACHE_VERSION = 1
MANIFEST = "manifest.json"
ENV_CACHE_DIR = "VLANALYZE_CACHE_DIR"


@dataclass(frozen=True)
class Manifest:
    """What a finished cache says about itself."""

    fingerprint: dict[str, Any]
    format: str
    counts: dict[str, int]
    top_level: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {
                "cache_version": CACHE_VERSION,
                "vlanalyze_version": __version__,
                "fingerprint": self.fingerprint,
                "format": self.format,
                "counts": self.counts,
                "top_level": self.top_level,
            },
            indent=2,
            default=str,
        )


def cache_location(source: Source, cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cache folder of ``source``: ``cache_dir`` if given, else :func:`default_cache_dir`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().absolute()
    named = source.path if source.path.is_dir() else source.metadata
    return default_cache_dir(named, folder=source.folder if source.path.is_dir() else None)


def default_cache_dir(source: Path, *, folder: Path | None) -> Path:
    """Where the cache of ``source`` goes unless the user says otherwise.

    Next to the export (``<folder>/.vlanalyze-cache`` for an export folder,
    ``.<name>.vlanalyze-cache`` beside a ZIP or bare file); under
    ``$VLANALYZE_CACHE_DIR`` or the user cache folder when that is set or the export's
    folder is read-only.
    """
    base = os.environ.get(ENV_CACHE_DIR)
    if base:
        return _user_cache(Path(base), source)
    if folder is not None:
        candidate, parent = folder / ".vlanalyze-cache", folder
    else:
        candidate, parent = source.parent / f".{source.name}.vlanalyze-cache", source.parent
    if candidate.exists() or os.access(parent, os.W_OK):
        return candidate
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return _user_cache(Path(xdg) / "vlanalyze", source)


def _user_cache(base: Path, source: Path) -> Path:
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return base / f"{source.name}-{digest}"


def load_manifest(cache: Path, fingerprint: dict[str, Any]) -> Manifest | None:
    """The cache's manifest if the cache is complete and matches ``fingerprint``."""
    path = cache / MANIFEST
    if not cache.exists():
        return None
    if not cache.is_dir():
        raise CacheError(
            f"the cache path {cache} is a file, not a folder",
            fix=Fix("cache_dir", "to choose another cache folder", None),
        )
    if not path.exists():
        if any(cache.iterdir()):
            raise CacheError(
                f"{cache} exists but is not a vlanalyze cache",
                fix=Fix("cache_dir", "to choose another one", None, prefix="move it away, or "),
            )
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise CacheError(f"cannot read the cache manifest {path}: {exc.strerror}") from None
    except (OSError, ValueError):
        return None  # damaged: ours to rebuild
    if not isinstance(data, dict) or data.get("cache_version") != CACHE_VERSION:
        return None
    if data.get("fingerprint") != fingerprint:
        return None
    if not all((cache / t).is_dir() for t in schema.TABLES):
        return None
    return Manifest(data["fingerprint"], data["format"], data["counts"], data["top_level"])


def build(cache: Path, fingerprint: dict[str, Any], fill: Callable[[Path], Manifest]) -> Manifest:
    """Build a cache with ``fill(temp_folder)`` and move it into place atomically."""
    try:
        tmp = make_temp_folder(cache)
    except OSError as exc:
        raise CacheError(
            f"cannot create the cache folder {cache}: {exc.strerror}",
            fix=Fix("cache_dir", "to put it elsewhere", None, prefix=f"set {ENV_CACHE_DIR}, or "),
        ) from None
    try:
        manifest = fill(tmp)
        write_text_atomic(tmp / MANIFEST, manifest.to_json(), overwrite=False)
        # A stale cache there is ours (load_manifest refused anything else): replace it.
        replace_folder(tmp, cache, overwrite=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def parts(cache: Path, table: str) -> list[str]:
    """The Parquet part files of ``table`` in ``cache``, in order."""
    return sorted(str(p) for p in (cache / table).glob("part-*.parquet"))
