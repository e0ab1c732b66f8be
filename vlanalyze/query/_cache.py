"""The Parquet cache of an export's tidy tables: where it lives, when to trust it, how to
build it while other processes read and build it too.

Layout, under a cache *root* (``cache_dir=``, ``$VLANALYZE_CACHE_DIR``, or by default
``.vlanalyze-cache`` beside the metadata file or ZIP)::

    <root>/<name>-<key>/          one *entry* per export, keyed on its resolved file
        .lock                     held (flock) by the one process building
        current                   the id of the build to read
        <build-id>/               a complete build: manifest.json, <table>/part-*.parquet
        .building-<build-id>/     a build under way

A build is made under the entry's lock in a ``.building-*`` folder, renamed to its id
when complete, and only then named in ``current``: a reader never sees a half-built or
moving cache, and two processes never build the same entry at once. A reader holds a
shared lock on its build's manifest for as long as it is open, and a build is removed
only when no one holds that lock, so an :class:`~vlanalyze.Export` keeps reading its own
consistent snapshot after another process rebuilt the cache. Leftovers of killed runs
(``.building-*``, builds no longer current) are removed by the next build, under the
lock, never while another process uses them.

A build is trusted only while its manifest's fingerprint (resolved path, size, mtime,
ctime, inode of the metadata file) matches and its part files are the ones it wrote
(name, size, mtime): a file a user's SQL wrote over the cache is detected, and the
cache rebuilt. Folders and files take the umask. It never touches a folder it did not
create: an entry path that holds something else is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from vlanalyze._fs import lock_fd
from vlanalyze._version import __version__
from vlanalyze.errors import CacheError, Fix
from vlanalyze.query import _schema as schema

CACHE_VERSION = 2
MANIFEST = "manifest.json"
CURRENT = "current"
LOCK = ".lock"
BUILDING = ".building-"
ROOT_NAME = ".vlanalyze-cache"
ENV_CACHE_DIR = "VLANALYZE_CACHE_DIR"
_BUILD_ID = re.compile(r"^[0-9a-f]+-[0-9]+$")
_WHERE = Fix(
    "cache_dir", "to choose another cache folder", None, prefix=f"set {ENV_CACHE_DIR}, or "
)


@dataclass(frozen=True)
class Manifest:
    """What a finished build says about itself."""

    fingerprint: dict[str, Any]
    format: str
    counts: dict[str, int]
    top_level: dict[str, Any]
    parts: dict[str, list[list[Any]]] = field(default_factory=dict)  # [name, size, mtime]

    def to_json(self) -> str:
        data = {"cache_version": CACHE_VERSION, "vlanalyze_version": __version__}
        data.update(self.__dict__)
        return json.dumps(data, indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> Manifest | None:
        """The manifest in ``text``; None when it is damaged or of another version."""
        try:
            data = json.loads(text)
            if data.get("cache_version") != CACHE_VERSION:
                return None
            return cls(
                data["fingerprint"], data["format"], data["counts"], data["top_level"],
                data["parts"],
            )  # fmt: skip
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def cache_root(metadata: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cache root for the export whose (resolved) metadata file or ZIP is ``metadata``.

    ``cache_dir`` or ``$VLANALYZE_CACHE_DIR`` if given; else ``.vlanalyze-cache`` beside
    ``metadata``, or the user cache folder where that folder is read-only.
    """
    chosen = cache_dir if cache_dir is not None else os.environ.get(ENV_CACHE_DIR)
    if chosen:
        return Path(chosen).expanduser().absolute()
    candidate = metadata.parent / ROOT_NAME
    if candidate.is_dir() or os.access(metadata.parent, os.W_OK):
        return candidate
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "vlanalyze"


def entry_folder(root: Path, key: str, name: str) -> Path:
    """The entry of one export under ``root``: ``<name>-<16 hex digits of key>``."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return root / f"{name}-{digest}"


class Snapshot:
    """One complete build, held open (shared lock) until :meth:`close`."""

    def __init__(self, path: Path, manifest: Manifest, fd: int) -> None:
        self.path = path
        self.manifest = manifest
        self._finalizer = weakref.finalize(self, os.close, fd)

    def parts(self, table: str) -> list[str]:
        """The part files of ``table``, as the build wrote them."""
        return [str(self.path / table / p[0]) for p in self.manifest.parts.get(table, [])]

    def close(self) -> None:
        """Release the build. An old build (no longer current) is removed by the last
        process that reads it, when it closes it; else by the next build."""
        if not self._finalizer.alive:
            return
        self._finalizer()
        entry = self.path.parent
        with suppress(OSError, CacheError):  # tidying is a courtesy: never an error
            current = _read_current(entry)
            if current is not None and current != self.path.name:
                tidy(entry, entry / current)


def open_current(entry: Path, fingerprint: dict[str, Any]) -> Snapshot | None:
    """The entry's current build if it is complete, intact and matches ``fingerprint``."""
    for _attempt in range(5):
        build = _read_current(entry)
        if build is None:
            return None
        path = entry / build / MANIFEST
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # replaced meanwhile: read `current` again
        except OSError as exc:
            raise CacheError(f"cannot read the cache manifest {path}: {exc.strerror}") from None
        lock_fd(fd, shared=True)
        manifest = _checked(fd, path, fingerprint)
        if isinstance(manifest, Manifest):
            return Snapshot(path.parent, manifest, fd)
        os.close(fd)
        if manifest is None:
            return None
        # False: removed between open and lock; read `current` again
    return None


def _checked(fd: int, path: Path, fingerprint: dict[str, Any]) -> Manifest | Literal[False] | None:
    try:
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return False
    except FileNotFoundError:
        return False
    with os.fdopen(os.dup(fd), encoding="utf-8") as fh:
        try:
            manifest = Manifest.from_json(fh.read())
        except (OSError, UnicodeDecodeError):
            return None
    if manifest is None or manifest.fingerprint != fingerprint:
        return None
    return manifest if _parts_intact(path.parent, manifest) else None


def _parts_intact(build: Path, manifest: Manifest) -> bool:
    """True when every part is the file the build wrote (a user's COPY changes it)."""
    if set(manifest.parts) != set(schema.TABLES):
        return False
    for table, parts in manifest.parts.items():
        for name, size, mtime in parts:
            try:
                st = os.stat(build / table / name)
            except OSError:
                return False
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                return False
    return True


def tidy(entry: Path, keep: Path) -> None:
    """Remove old builds no one reads, if no process is building (never waits)."""
    with os.scandir(entry) as children:
        if not any(c.name != keep.name and _BUILD_ID.match(c.name) for c in children):
            return
    try:
        fd = os.open(entry / LOCK, os.O_RDWR)
    except OSError:
        return
    try:
        if lock_fd(fd, wait=False):  # else someone is building: they clean
            clean(entry)
    finally:
        os.close(fd)


def _read_current(entry: Path) -> str | None:
    try:
        text = (entry / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(f"cannot read the cache {entry}: {exc.strerror}", fix=_WHERE) from None
    return text if _BUILD_ID.match(text) else None


def build(
    entry: Path,
    fingerprint: dict[str, Any],
    fill: Callable[[Path], Manifest],
    *,
    refresh: bool = False,
) -> Snapshot:
    """Build the entry with ``fill(folder)`` under its lock and make it current.

    If another process built a matching cache while this one waited for the lock, that
    one is used (unless ``refresh``).
    """
    with _entry_lock(entry):
        if not refresh:
            found = open_current(entry, fingerprint)
            if found is not None:
                return found
        clean(entry)
        build_id = f"{time.time_ns():x}-{os.getpid()}"
        tmp = entry / (BUILDING + build_id)
        _mkdir(tmp)
        try:
            manifest = fill(tmp)
            manifest = replace(manifest, parts=_list_parts(tmp))
            (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
            os.rename(tmp, entry / build_id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _write_current(entry, build_id)
        found = open_current(entry, fingerprint)
        clean(entry)
    if found is None:
        raise CacheError(f"the cache {entry / build_id} changed while it was built", fix=_WHERE)
    return found


def parts_in(folder: Path, table: str) -> list[str]:
    """The part files of ``table`` in a build folder, in order."""
    return sorted(str(p) for p in (folder / table).glob("part-*.parquet"))


def _list_parts(folder: Path) -> dict[str, list[list[Any]]]:
    parts: dict[str, list[list[Any]]] = {}
    for table in schema.TABLES:
        files = sorted((folder / table).glob("part-*.parquet"))
        parts[table] = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return parts


def _write_current(entry: Path, build_id: str) -> None:
    tmp = entry / f".{CURRENT}.{build_id}"
    tmp.write_text(build_id + "\n", encoding="utf-8")
    os.replace(tmp, entry / CURRENT)


def clean(entry: Path) -> None:
    """Remove what no live process uses: build folders of killed runs, old builds.

    Call with the entry's lock held (no one else is building). A build someone still
    reads (a shared lock on its manifest) stays.
    """
    current = _read_current(entry)
    for child in entry.iterdir():
        name = child.name
        if name.startswith(BUILDING) or name.startswith(f".{CURRENT}."):
            _remove(child)
        elif _BUILD_ID.match(name) and name != current:
            _remove_unused(child)


def _remove_unused(build: Path) -> None:
    """Remove ``build`` unless a reader holds its manifest (a shared lock).

    The manifest goes first, while the exclusive lock is held: a reader that opened it
    just before gets its lock only after, finds it gone, and reads ``current`` again.
    """
    manifest = build / MANIFEST
    try:
        fd = os.open(manifest, os.O_RDONLY)
    except FileNotFoundError:
        _remove(build)  # damaged: no one can be reading it
        return
    except OSError:
        return
    try:
        if not lock_fd(fd, wait=False):
            return  # in use
        manifest.unlink()
    except OSError:
        return
    finally:
        os.close(fd)
    _remove(build)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _entry_lock(entry: Path) -> Iterator[None]:
    _prepare(entry)
    try:
        fd = os.open(entry / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise CacheError(
            f"cannot create the cache folder {entry}: {exc.strerror}", fix=_WHERE
        ) from None
    try:
        lock_fd(fd)
        yield
    finally:
        os.close(fd)


def _prepare(entry: Path) -> None:
    """Create the entry (and its root); refuse a path that holds something not ours."""
    if entry.parent.exists() and not entry.parent.is_dir():
        raise CacheError(f"the cache path {entry.parent} is a file, not a folder", fix=_WHERE)
    if entry.exists():
        if not entry.is_dir():
            raise CacheError(f"the cache path {entry} is a file, not a folder", fix=_WHERE)
        if not (entry / LOCK).exists() and any(entry.iterdir()):
            raise CacheError(f"{entry} exists but is not a vlanalyze cache", fix=_WHERE)
    _mkdir(entry, parents=True)


def _mkdir(path: Path, *, parents: bool = False) -> None:
    try:
        path.mkdir(parents=parents, exist_ok=parents)
    except OSError as exc:
        raise CacheError(
            f"cannot create the cache folder {path}: {exc.strerror}", fix=_WHERE
        ) from None
