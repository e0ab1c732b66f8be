"""Find an export's metadata: in a folder, in the downloaded ZIP, or a bare file.

Says which file (or ZIP member) holds the metadata, in which form, and where the images
are; where the cache goes is :mod:`vlanalyze.query._cache`'s business. A ZIP is read in
place: only its metadata member is ever copied out (by :func:`copy_member`), never its
images. Reads nothing else.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlanalyze._metadata import METADATA_NAMES, READ_ORDER, sniff_format, zip_member_name
from vlanalyze.errors import ArchiveError, ExportFormatError
from vlanalyze.query._sql import is_fault


@dataclass(frozen=True)
class Source:
    """Where an export's metadata is, and how to read it."""

    path: Path  # what the user named (folder, ZIP or file), absolute
    format: str  # "json" or "parquet"
    metadata: Path  # the metadata file, or the ZIP holding it
    member: str | None = None  # metadata member name inside a ZIP
    folder: Path | None = None  # the export folder (None for a ZIP or bare file)

    @property
    def root(self) -> Path:
        """The folder that holds ``images/`` (or the ZIP itself)."""
        if self.member is not None:
            return self.metadata
        return self.folder if self.folder is not None else self.metadata.parent

    @property
    def zip_prefix(self) -> str:
        """Folder of the metadata member inside the ZIP ("" at the root)."""
        if self.member is None or "/" not in self.member:
            return ""
        return self.member.rsplit("/", 1)[0] + "/"

    @property
    def key(self) -> str:
        """What names this export's cache: the resolved metadata file (and ZIP member), so
        a symlink, ``../``, the folder or the file itself all share one cache."""
        resolved = str(self.metadata.resolve())
        return resolved if self.member is None else f"{resolved}\0{self.member}"

    @property
    def unread(self) -> Path | None:
        """The other metadata file beside the one read (a folder holding both), or None."""
        if self.member is not None or self.folder is None:
            return None
        other = self.metadata.with_name(READ_ORDER[1 - READ_ORDER.index(self.metadata.name)])
        return other if other.is_file() else None

    def fingerprint(self) -> dict[str, Any]:
        """What changes when the metadata file does: a rewrite that restores the size and
        mtime still changes the ctime, a replaced file its inode."""
        resolved = self.metadata.resolve()
        st = resolved.stat()
        return {
            "path": str(resolved),
            "member": self.member,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino,
            "device": st.st_dev,
        }


def find_source(path: str | os.PathLike[str]) -> Source:
    """Find the metadata of the export at ``path``; raise a clear error if there is none."""
    p = Path(path).expanduser().absolute()
    if not p.exists():
        raise ExportFormatError(f"{p}: no such file or folder")
    if p.is_dir():
        return _source_in_folder(p)
    if p.suffix.lower() == ".zip" or sniff_format(p) == "zip":
        return _source_in_zip(p)
    fmt = _format_of(p)
    return Source(path=p, format=fmt, metadata=p)


def _source_in_folder(folder: Path) -> Source:
    found = _metadata_in(folder)
    if found is None:
        subfolders = sorted(d for d in folder.iterdir() if d.is_dir() and d.name[:1] != ".")
        inside = [(d, m) for d in subfolders if (m := _metadata_in(d)) is not None]
        if len(inside) > 1:
            names = ", ".join(d.name for d, _m in inside[:10])
            more = f" and {len(inside) - 10} more" if len(inside) > 10 else ""
            raise ExportFormatError(
                f"{folder} holds {len(inside)} exports ({names}{more})",
                hint=f"open one of them, e.g. {inside[0][0]}",
            )
        if inside:
            found = inside[0][1]
    if found is None:
        raise ExportFormatError(
            f"{folder}: no metadata.json or metadata.parquet in this folder",
            hint="point at the folder the export ZIP was extracted into, or at the ZIP",
        )
    return Source(folder, _format_of(found), found, folder=found.parent)


def _metadata_in(candidate: Path) -> Path | None:
    # With both files, metadata.parquet is read (READ_ORDER); `info` says so.
    present = [candidate / n for n in READ_ORDER if (candidate / n).is_file()]
    return present[0] if present else None


def _source_in_zip(archive: Path) -> Source:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(
            f"{archive}: not a readable ZIP archive ({exc})",
            hint="the download may be incomplete; download the export again",
        ) from None
    found = [n for n in names if n.rsplit("/", 1)[-1] in METADATA_NAMES and n.count("/") <= 1]
    if not found:
        raise ArchiveError(
            f"{archive}: the archive holds no metadata.json or metadata.parquet",
            hint="this is not a Visual Layer export archive",
        )
    # The shallowest first; beside each other, metadata.parquet (as in a folder).
    found.sort(key=lambda n: (n.count("/"), READ_ORDER.index(n.rsplit("/", 1)[-1]), n))
    shallowest = [n for n in found if n.count("/") == found[0].count("/")]
    folders = sorted({n.rpartition("/")[0] for n in shallowest})
    if len(folders) > 1:  # two exports side by side
        raise ExportFormatError(
            f"{archive}: the archive holds two exports, in {folders[0]}/ and {folders[1]}/"
        )
    member = found[0]
    fmt = "parquet" if member.endswith(".parquet") else "json"
    return Source(path=archive, format=fmt, metadata=archive, member=member)


def _format_of(path: Path) -> str:
    sniffed = sniff_format(path)
    if sniffed in ("json", "parquet"):
        return sniffed
    raise ExportFormatError(
        f"{path}: not a Visual Layer metadata file (neither JSON nor Parquet)",
        hint="open the export folder, the ZIP, metadata.json or metadata.parquet",
    )


def copy_member(source: Source, work: Path) -> Path:
    """Copy a ZIP's metadata member into ``work``; return the copy's path."""
    assert source.member is not None
    target = work / f"metadata.{source.format}"
    try:
        with (
            zipfile.ZipFile(source.metadata) as zf,
            zf.open(source.member) as src,
            target.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 4 << 20)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        if is_fault(exc):
            raise  # disk full while writing the copy: not the archive's fault
        raise ArchiveError(
            f"{source.metadata}: cannot read {source.member} ({exc})",
            hint="the archive is damaged; download the export again",
        ) from None
    return target


def zip_names(source: Source) -> list[str]:
    """The members of the export's ZIP, named as ``unzip`` names them."""
    with zipfile.ZipFile(source.metadata) as zf:
        return [zip_member_name(info) for info in zf.infolist()]
