"""Find each media item's image file inside an export.

The naming inside an export's ``images/`` folder is undocumented, so an item is
matched, in this order, by its ``file_path`` (mirrored under ``images/``), by its
``media_id`` (a file named ``<media_id>.<ext>``), and by its ``file_name`` when exactly
one image file, and one item, has that name. A file another item's ``file_path`` names
is that item's, never a fallback for an item whose own image is missing (a partial
``images/`` folder). File names repeat (video frames are all ``output_00000N.jpg``), so
a name shared by several files or items is *ambiguous*, not a match.

It reads file listings only, never image bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded by match_images: listing files needs no polars
    import polars as pl

IMAGES_DIR = "images"


@dataclass(frozen=True)
class ImageMatch:
    """Which image file each media item has, and how many matched."""

    paths: pl.DataFrame  # media_id, image_path (relative to the export root)
    found: int
    missing: int
    ambiguous: int
    files: int
    links: frozenset[str] = frozenset()  # image_paths that are symlinks (to a file)


def list_folder_images(root: Path) -> tuple[list[str], frozenset[str]]:
    """Paths (posix, relative to ``images/``) of the image files under ``root/images``:
    regular files, or symlinks to one (those are also returned apart). Hidden files,
    broken symlinks and special files are not images; symlinked folders are not walked
    (as ``os.walk`` does not)."""
    base = root / IMAGES_DIR
    if not base.is_dir():
        return [], frozenset()
    found: list[str] = []
    links: set[str] = set()

    def walk(folder: Path, prefix: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        folders = []
        for entry in entries:  # (file types come with the listing: no stat a file)
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry)
            elif not entry.name.startswith(".") and entry.is_file():
                found.append(prefix + entry.name)
                if entry.is_symlink():
                    links.add(prefix + entry.name)
        for entry in folders:
            walk(Path(entry.path), f"{prefix}{entry.name}/")

    walk(base, "")
    return found, frozenset(links)


def list_zip_images(names: list[str], prefix: str) -> list[str]:
    """Member names under ``<prefix>images/``, relative to that folder."""
    start = f"{prefix}{IMAGES_DIR}/"
    return [n[len(start) :] for n in names if n.startswith(start) and not n.endswith("/")]


def match_images(
    media: pl.DataFrame, files: list[str], links: frozenset[str] = frozenset()
) -> ImageMatch:
    """Match ``media`` (media_id, file_name, file_path) to image ``files`` (``links``:
    those of them that are symlinks)."""
    import polars as pl

    if not files:
        empty = pl.DataFrame(schema={"media_id": pl.String, "image_path": pl.String})
        return ImageMatch(empty, 0, media.height, 0, 0)
    images = pl.DataFrame({"rel": files}, schema={"rel": pl.String}).with_columns(
        name=pl.col("rel").str.split("/").list.last()
    )
    images = images.with_columns(stem=pl.col("name").str.replace(r"\.[^.]*$", ""))
    by_path = media.select("media_id", rel=pl.col("file_path").str.strip_chars_start("/")).join(
        images.select("rel"), on="rel", how="inner"
    )
    # A file another item's file_path names is that item's: never an id or name match.
    free = images.join(by_path.select("rel"), on="rel", how="anti")
    left = media.join(by_path.select("media_id"), on="media_id", how="anti")
    by_id = left.select("media_id").join(
        free.select("rel", media_id="stem").unique("media_id", keep="none"),
        on="media_id",
        how="inner",
    )
    free = free.join(by_id.select("rel"), on="rel", how="anti")
    left = left.join(by_id.select("media_id"), on="media_id", how="anti")
    by_name, ambiguous = _by_name(left, free)
    matched = pl.concat([by_path, by_id, by_name], how="vertical").unique(
        "media_id", keep="first", maintain_order=True
    )
    matched = matched.select("media_id", image_path=pl.lit(IMAGES_DIR + "/") + pl.col("rel"))
    return ImageMatch(
        paths=matched,
        found=matched.height,
        missing=media.height - matched.height,
        ambiguous=ambiguous,
        files=len(files),
        links=frozenset(f"{IMAGES_DIR}/{rel}" for rel in links),
    )


def _by_name(left: pl.DataFrame, free: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Items of ``left`` (matched neither by path nor by id) matched by file name to a
    ``free`` file (one no other item's path or id claims): only where exactly one free
    file and one such item have that name. Also how many items a name leaves ambiguous."""
    import polars as pl

    files = free.group_by("name").agg(n=pl.len(), rel=pl.col("rel").first())
    named = left.select("media_id", name="file_name").filter(pl.col("name").is_not_null())
    named = named.with_columns(items=pl.len().over("name")).join(files, on="name")
    single = (pl.col("n") == 1) & (pl.col("items") == 1)
    return named.filter(single).select("media_id", "rel"), named.filter(~single).height
