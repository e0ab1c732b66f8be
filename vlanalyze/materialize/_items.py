"""What the export says of the selected items: names, labels, sizes, boxes.

Label policy when the selection has no ``label`` column: an image's image-level label
given by a person (source ``User``) first, then ``Model``, then ``Visual Layer``, ties
broken by name; images with none are ``unlabeled``; without a ``split`` column every
item is in ``train``. The ``hf`` layout also lists all labels. A label or box whose
category is null or blank names nothing and is left out. Reads only.
"""

from __future__ import annotations

import polars as pl

from vlanalyze.errors import MaterializeError, SelectionError
from vlanalyze.materialize import _names as names_mod
from vlanalyze.materialize._selection import SelectionTable
from vlanalyze.query._export import Export
from vlanalyze.query._schema import LABEL_SOURCE_PRIORITY

__all__ = ["DEFAULT_SPLIT", "UNLABELED", "all_labels", "boxes_of", "items_of"]

UNLABELED = "unlabeled"
DEFAULT_SPLIT = "train"
_SOURCE_RANK = {source: i for i, source in enumerate(LABEL_SOURCE_PRIORITY)}
Box = tuple[str, float, float, float, float]


def items_of(export: Export, sel: SelectionTable) -> pl.DataFrame:
    """Selection rows joined to the export's media, with label, split and name fields
    (one query)."""
    media = (
        export.table("media", image_path=False)
        .select("media_id", "file_name", "file_path", "width", "height", "uniqueness_score", "url")
        .with_columns(_known=pl.lit(True))
    )
    query = sel.frame.lazy().join(media, on="media_id", how="left", maintain_order="left")
    if not sel.has_label:
        chosen = _chosen_labels(export, sel)
        if chosen.height:  # (a join with nothing costs as much as one with something)
            query = query.drop("label").join(
                chosen.lazy(), on="media_id", how="left", maintain_order="left"
            )
    base = pl.coalesce(
        _text(pl.col("file_name")),
        _text(pl.col("file_path").str.split("/").list.last()),
        pl.col("media_id"),
    )
    # {file_name} stays as the export has it; {stem} and {ext} are names_mod.split_name's.
    stem, ext = names_mod.split_names(pl.col("file_name"))
    items = (
        query.with_columns(
            label=pl.col("label").fill_null(UNLABELED),
            split=pl.col("split").fill_null(DEFAULT_SPLIT),
            file_name=base,
            file_path=pl.col("file_path").fill_null(""),
            media_id8=pl.col("media_id").str.slice(0, 8),
        )
        .with_columns(stem=stem, ext=ext)
        .collect()
    )
    unknown = items.filter(pl.col("_known").is_null())["media_id"]
    if unknown.len():
        shown = ", ".join(unknown.head(5).to_list())
        raise SelectionError(
            f"{unknown.len()} media id(s) of the selection are not in the export: {shown}",
            hint="the selection must come from this export",
        )
    if items.height > sel.frame.height:
        _refuse_twice_listed(items)
    return items.drop("_known")


def _text(column: pl.Expr) -> pl.Expr:
    """``column`` with empty values as nulls (an empty name is no name)."""
    return pl.when(column != "").then(column)


def _refuse_twice_listed(items: pl.DataFrame) -> None:
    """Raise for media ids the export lists on several rows: which row's image is it?"""
    twice = items.filter(pl.col("media_id").is_duplicated())
    media_id = twice["media_id"][0]
    paths = twice.filter(pl.col("media_id") == media_id)["file_path"].to_list()
    raise MaterializeError(
        f"the export lists media id {media_id} {len(paths)} times (file_path "
        f"{', '.join(map(repr, paths))}): it cannot tell which image is that item's",
        hint="leave that id out of the selection, or export the dataset again",
    )


def _named_of(labels: pl.LazyFrame, sel: SelectionTable) -> pl.LazyFrame:
    """The ``labels`` (or objects) of selected media that have a category name (a null
    or blank one names nothing)."""
    named = labels.filter(pl.col("category_name").str.strip_chars() != "")
    return named.join(sel.frame.lazy().select("media_id"), on="media_id", how="semi")


def _chosen_labels(export: Export, sel: SelectionTable) -> pl.DataFrame:
    labels = _named_of(export.labels, sel)
    rank = pl.col("source").replace_strict(
        _SOURCE_RANK, default=len(_SOURCE_RANK), return_dtype=pl.Int32
    )
    return (
        labels.with_columns(_rank=rank)
        .sort("media_id", "_rank", "category_name")
        .group_by("media_id", maintain_order=True)
        .agg(label=pl.col("category_name").first())
        .collect()
    )


def all_labels(export: Export, sel: SelectionTable) -> dict[str, list[str]]:
    labels = _named_of(export.labels, sel)
    grouped = labels.group_by("media_id").agg(pl.col("category_name").unique().sort()).collect()
    return dict(zip(grouped["media_id"], grouped["category_name"].to_list(), strict=True))


def boxes_of(
    export: Export, sel: SelectionTable
) -> dict[str, list[tuple[str, float, float, float, float]]]:
    objects = (
        _named_of(export.objects, sel)
        .filter(pl.col("bbox_w").is_not_null() & pl.col("bbox_h").is_not_null())
        .select("media_id", "category_name", "bbox_x", "bbox_y", "bbox_w", "bbox_h")
        .collect()
    )
    boxes: dict[str, list[Box]] = {}
    for media_id, cat, x, y, w, h in objects.iter_rows():
        boxes.setdefault(media_id, []).append((cat, x, y, w, h))
    return boxes
