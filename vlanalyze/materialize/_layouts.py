"""Training layouts: where each image goes, and the side files a framework reads.

``flat``, ``by-label``, ``imagefolder`` (torchvision), ``hf`` (Hugging Face
imagefolder with ``metadata.jsonl`` per split, or typed ``metadata.parquet`` where JSONL's
inferred types would differ between splits), ``yolo`` (Ultralytics), ``coco`` and ``csv``
(the manifest alone). Boxes in an export are ``[x, y, w, h]`` in pixels from the
top-left corner; YOLO wants ``cx cy w h`` normalized by the item's width and height,
COCO keeps pixels. One class list serves every split (a list per split swaps labels).
Pure: returns paths and file contents, writes nothing.

YOLO's ``data.yaml`` always has the ``train:`` and ``val:`` Ultralytics requires: a
split the selection lacks points at the images it has (``val:`` at the training images
when there is no split column), and :func:`layout_notes` says so; splits that are all
``val`` (``val``, ``valid``, ``validation``) are listed under one ``val:``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._hf import Boxes, hf_files, hf_notes, hf_split
from vlanalyze.materialize._names import check_component, split_name, split_names

__all__ = ["LAYOUTS", "image_dests", "layout_notes", "side_files"]

LAYOUTS = ("flat", "by-label", "imagefolder", "hf", "yolo", "coco", "csv")
_YOLO_KEYS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def image_dests(layout: str, items: pl.DataFrame) -> pl.Series:
    """The destination (relative, posix) of every item (name, label, split columns)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout in ("by-label", "imagefolder"):
        for label in items["label"].unique().to_list():
            check_component(label, "the label")
    splits: list[str] = items["split"].unique().to_list()
    if layout in ("imagefolder", "hf", "yolo", "coco"):
        for split in splits:
            check_component(split, "the split")
    if layout == "hf":
        unknown = sorted(s for s in splits if hf_split(s) is None)
        if unknown:
            raise MaterializeError(
                f"hf: datasets loads no split from a folder named {unknown[0]!r} (it would "
                "drop or merge its images); the selection's splits must be train, "
                "validation or test (or training, valid, val, dev, testing, eval, evaluation)",
                hint="rename the split column's values",
            )
    if layout == "yolo":
        unknown = sorted(s for s in splits if s not in _YOLO_KEYS)
        if unknown:
            raise MaterializeError(
                f"YOLO splits must be train, val or test; the selection has {unknown[0]!r}",
                hint="rename the split column's values to train / val / test",
            )
    if layout == "csv":
        return pl.Series("dest", [None] * items.height, dtype=pl.String)
    parts: list[pl.Expr] = {
        "flat": [pl.col("name")],
        "by-label": [pl.col("label"), pl.col("name")],
        "imagefolder": [pl.col("split"), pl.col("label"), pl.col("name")],
        "hf": [pl.col("split"), pl.col("name")],
    }.get(layout, [pl.lit("images"), pl.col("split"), pl.col("name")])
    return items.select(dest=pl.concat_str(parts, separator="/")).to_series()


def side_files(
    layout: str,
    items: pl.DataFrame,
    boxes: Boxes,
    all_labels: Mapping[str, list[str]],
    out: Path,
) -> dict[str, bytes]:
    """The layout's own files (relative path -> content): labels, data.yaml, JSON, JSONL."""
    if layout == "yolo":
        return _yolo(items, boxes, out)
    if layout == "coco":
        return _coco(items, boxes)
    if layout == "hf":
        return hf_files(items, boxes, all_labels)
    return {}


def layout_notes(
    layout: str, items: pl.DataFrame, files: Mapping[str, bytes], boxes: Boxes
) -> list[str]:
    """What a person should know of the layout's files (from :func:`side_files`)."""
    if layout == "yolo":
        return _yolo_notes(items["split"].unique().to_list(), files) + _clip_notes(items, boxes)
    if layout == "imagefolder":
        return _class_notes(items)
    if layout != "hf":
        return []
    notes = hf_notes(items["split"].unique().to_list())
    if any(path.endswith("/metadata.parquet") for path in files):
        notes.insert(
            0,
            "hf: each split's metadata is metadata.parquet, not metadata.jsonl: datasets "
            "would infer different column types for the splits' JSONL (a split without "
            "any box or image label beside one with some); the Parquet loads the same way",
        )
    return notes


def _classes(items: pl.DataFrame, boxes: Boxes) -> list[str]:
    return sorted({b[0] for m in items["media_id"] for b in boxes.get(m, ())})


def _need_size(row: Mapping[str, Any], layout: str, what: str) -> tuple[int, int]:
    width, height = row["width"], row["height"]
    if not width or not height:
        raise MaterializeError(
            f"{layout}: media {row['media_id']} has no width/height in the export, and {what}",
            hint="choose a layout without boxes (flat, by-label, imagefolder)",
        )
    return int(width), int(height)


def _yolo_line(cls: int, box: Sequence[float], width: int, height: int) -> str | None:
    """``class cx cy w h`` of a pixel box clipped to the image (Ultralytics drops an
    image whose values leave [0, 1]); None when nothing of it is inside."""
    x, y, w, h = box
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (
        f"{cls} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
        f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
    )


def _outside(items: pl.DataFrame, boxes: Boxes) -> tuple[int, int]:
    """How many boxes reach past their image (clipped by :func:`_yolo_line`), and how
    many of those are wholly outside it (left out)."""
    clipped = dropped = 0
    for media_id, width, height in items.select("media_id", "width", "height").iter_rows():
        for _c, x, y, w, h in boxes.get(media_id, ()) if width and height else ():
            if x < 0 or y < 0 or x + w > width or y + h > height:
                clipped += 1
                dropped += min(x + w, width) <= max(x, 0) or min(y + h, height) <= max(y, 0)
    return clipped, dropped


def _yolo(items: pl.DataFrame, boxes: Boxes, out: Path) -> dict[str, bytes]:
    _check_label_files(items)
    classes = {name: i for i, name in enumerate(_classes(items, boxes))}
    files: dict[str, bytes] = {}
    for row in items.iter_rows(named=True):
        own = boxes.get(row["media_id"])
        if not own:
            continue  # Ultralytics needs no label file for an image without objects
        width, height = _need_size(row, "yolo", "it has boxes to normalize")
        lines = [_yolo_line(classes[c], box, width, height) for c, *box in own]
        kept = [line for line in lines if line is not None]
        if kept:
            files[_label_file(row["split"], row["name"])] = ("\n".join(kept) + "\n").encode()
    files["data.yaml"] = _data_yaml(out, items["split"].unique().to_list(), list(classes))
    return files


def _label_file(split: str, name: str) -> str:
    """Where Ultralytics looks for the labels of ``images/<split>/<name>``."""
    return f"labels/{split}/{split_name(name)[0]}.txt"


def _check_label_files(items: pl.DataFrame) -> None:
    """Raise if two images would share a label file: Ultralytics reads one image's boxes
    as the other's (or drops them), whether or not both have boxes."""
    stems = split_names(pl.col("name"))[0]  # as _label_file
    keys = items.select(pl.concat_str("split", pl.lit("/"), stems).str.to_lowercase())
    keys_s = keys.to_series()
    if not (keys_s.is_duplicated().any() or keys_s.str.contains(r"[^\x00-\x7f]").any()):
        return  # the common case, vectorized (beyond ASCII, casefold decides below)
    seen: dict[str, tuple[str, str]] = {}
    for split, name, dest in items.select("split", "name", "dest").iter_rows():
        label = _label_file(split, name)
        first, first_label = seen.setdefault(label.casefold(), (dest, label))
        if first.casefold() == dest.casefold():
            continue  # one image file: the destinations' own check names it
        case = (
            ""
            if first_label == label
            else ", and names differing only in case are one file on macOS and Windows"
        )
        raise MaterializeError(
            f"yolo: images {first!r} and {dest!r} would share the label file "
            f"{first_label!r} (Ultralytics reads an image's boxes from "
            f"labels/<split>/<stem>.txt{case}); nothing was written",
            hint="use the default name, or a name template with {media_id}",
        )


def _data_yaml(out: Path, splits: Sequence[str], classes: Sequence[str]) -> bytes:
    """``path``, ``train``, ``val`` (both always: Ultralytics requires them), ``test`` if
    there is one, and ``names`` as a dict (``{}`` without classes, never null)."""
    folders = _yolo_folders(splits)
    lines = [f"path: {_yaml_str(str(out))}"]
    for key, listed in folders.items():
        if len(listed) == 1:
            lines.append(f"{key}: {listed[0]}")
        else:
            lines.append(f"{key}: [{', '.join(listed)}]")
    lines.append("names:" if classes else "names: {}")
    lines.extend(f"  {i}: {_yaml_str(name)}" for i, name in enumerate(classes))
    return ("\n".join(lines) + "\n").encode()


def _yolo_folders(splits: Sequence[str]) -> dict[str, list[str]]:
    """data.yaml's ``train``/``val``/``test`` -> the image folders each lists; a key
    Ultralytics requires that no split maps to takes the folders of the first there is."""
    folders: dict[str, list[str]] = {}
    for key in ("train", "val", "test"):
        own = sorted(s for s in splits if _YOLO_KEYS[s] == key)
        if own:
            folders[key] = [f"images/{s}" for s in own]
    present = list(folders.values())
    for key in ("train", "val"):
        folders.setdefault(key, present[0])
    return {key: folders[key] for key in ("train", "val", "test") if key in folders}


def _yolo_notes(splits: Sequence[str], files: Mapping[str, bytes]) -> list[str]:
    folders = _yolo_folders(splits)
    keys = {_YOLO_KEYS[s] for s in splits}
    stand_in = next(key for key in ("train", "val", "test") if key in keys)
    notes = []
    for key, purpose in (("train", "training"), ("val", "validation")):
        if key not in keys:
            why = " (without a split column, every image is in train)" if key == "val" else ""
            notes.append(
                f"yolo: the selection has no {key} split{why}; Ultralytics requires "
                f"data.yaml's {key}:, so it lists {', '.join(folders[key])}, the images of "
                f"{stand_in}:; for a real {purpose} set, give the selection a split column "
                f"with {key} rows"
            )
    merged = sorted(s for s in splits if _YOLO_KEYS[s] == "val")
    if len(merged) > 1:
        notes.append(f"yolo: splits {', '.join(merged)} are all Ultralytics' val: data.yaml "
                     "lists their folders under one val: key")  # fmt: skip
    if not any(path.startswith("labels/") for path in files):
        notes.append(
            "yolo: the selected images have no boxes: data.yaml has no classes (names: {}), "
            "there are no label files, and Ultralytics refuses a data.yaml without classes; "
            "select images with boxes, or use imagefolder or by-label for image labels"
        )
    return notes


def _clip_notes(items: pl.DataFrame, boxes: Boxes) -> list[str]:
    clipped, dropped = _outside(items, boxes)
    if not clipped:
        return []
    left = f", {dropped} of them wholly outside it, left out" if dropped else ""
    return [f"yolo: {clipped} boxes reach past their image's edge{left}: the label files "
            "hold them clipped to the image (Ultralytics drops an image whose label "
            "values leave [0, 1])"]  # fmt: skip


def _class_notes(items: pl.DataFrame) -> list[str]:
    """ImageFolder numbers the classes of each split's folder on its own: a label some
    split lacks shifts every later class's index there."""
    per_split = items.group_by("split").agg(pl.col("label").unique()).rows()
    if len(per_split) < 2:
        return []
    every = set().union(*(labels for _split, labels in per_split))
    lacking = sorted((split, sorted(every - set(labels))) for split, labels in per_split)
    lacking = [(split, labels) for split, labels in lacking if labels]
    if not lacking:
        return []
    shown = "; ".join(f"{split} lacks {', '.join(labels[:3])}" for split, labels in lacking[:3])
    return [f"imagefolder: the splits hold different labels ({shown}): torchvision's "
            "ImageFolder numbers each split's classes on its own, so one index means "
            "different labels; give every split the full class list (class_to_idx from "
            "train) or select every label in every split"]  # fmt: skip


def _yaml_str(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that any YAML reader loads back exactly:
    printable ASCII as is, the rest escaped (``\\U`` for characters outside the BMP, which
    JSON would split into a surrogate pair that YAML reads as two characters)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _coco(items: pl.DataFrame, boxes: Boxes) -> dict[str, bytes]:
    # Ids start at 1: 0-based category ids break CVAT and other readers.
    categories = {name: i for i, name in enumerate(_classes(items, boxes), start=1)}
    per_split: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"images": [], "annotations": []}
    )
    for row in items.iter_rows(named=True):
        doc = per_split[row["split"]]
        image_id = len(doc["images"]) + 1  # each split's file stands alone: ids from 1
        width, height = _need_size(row, "coco", "COCO's images need them")
        doc["images"].append(
            {
                "id": image_id,
                "file_name": row["name"],
                "width": width,
                "height": height,
                "media_id": row["media_id"],
            }
        )
        for c, x, y, w, h in boxes.get(row["media_id"], ()):
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": categories[c],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
    cats = [{"id": i, "name": n, "supercategory": ""} for n, i in categories.items()]
    return {
        f"annotations/instances_{split}.json": json.dumps(
            {**doc, "categories": cats}, ensure_ascii=False
        ).encode()
        for split, doc in sorted(per_split.items())
    }
