"""Training layouts: where each image goes, and the side files a framework reads.

``flat``, ``by-label``, ``imagefolder`` (torchvision), ``hf`` (Hugging Face
imagefolder with ``metadata.jsonl`` per split, or typed ``metadata.parquet`` where JSONL's
inferred types would differ between splits), ``yolo`` (Ultralytics), ``coco`` and ``csv``
(the manifest alone). Boxes in an export are ``[x, y, w, h]`` in pixels from the
top-left corner; YOLO wants ``cx cy w h`` normalized by the item's width and height,
COCO keeps pixels. One class list serves every split (a list per split swaps labels).
Pure: returns paths and file contents, writes nothing.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._names import check_component, split_name

__all__ = ["LAYOUTS", "image_dests", "layout_notes", "side_files"]

LAYOUTS = ("flat", "by-label", "imagefolder", "hf", "yolo", "coco", "csv")
_YOLO_KEYS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

Boxes = Mapping[str, list[tuple[str, float, float, float, float]]]


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
        return _hf(items, boxes, all_labels)
    return {}


def layout_notes(layout: str, files: Mapping[str, bytes]) -> list[str]:
    """What a person should know of the layout's files (from :func:`side_files`)."""
    if layout == "hf" and any(path.endswith("/metadata.parquet") for path in files):
        return [
            "hf: each split's metadata is metadata.parquet, not metadata.jsonl: datasets "
            "would infer different column types for the splits' JSONL (a split without "
            "any box or image label beside one with some); the Parquet loads the same way"
        ]
    return []


def _classes(items: pl.DataFrame, boxes: Boxes) -> list[str]:
    return sorted({b[0] for m in items["media_id"] for b in boxes.get(m, ())})


def _need_size(row: Mapping[str, Any], layout: str) -> tuple[int, int]:
    width, height = row["width"], row["height"]
    if not width or not height:
        raise MaterializeError(
            f"{layout}: media {row['media_id']} has boxes but no width/height in the export",
            hint="choose a layout without boxes (flat, by-label, imagefolder)",
        )
    return int(width), int(height)


def _yolo(items: pl.DataFrame, boxes: Boxes, out: Path) -> dict[str, bytes]:
    classes = {name: i for i, name in enumerate(_classes(items, boxes))}
    files: dict[str, bytes] = {}
    for row in items.iter_rows(named=True):
        own = boxes.get(row["media_id"])
        if not own:
            continue  # Ultralytics needs no label file for an image without objects
        width, height = _need_size(row, "yolo")
        lines = [
            f"{classes[c]} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
            f"{w / width:.6f} {h / height:.6f}"
            for c, x, y, w, h in own
        ]
        stem = split_name(row["name"])[0]
        files[f"labels/{row['split']}/{stem}.txt"] = ("\n".join(lines) + "\n").encode()
    yaml = [f"path: {json.dumps(str(out))}"]
    present = set(items["split"].to_list())
    for split in sorted(present, key=lambda s: ("train", "val", "test").index(_YOLO_KEYS[s])):
        yaml.append(f"{_YOLO_KEYS[split]}: images/{split}")
    yaml.append("names:")
    yaml.extend(f"  {i}: {json.dumps(name)}" for name, i in classes.items())
    files["data.yaml"] = ("\n".join(yaml) + "\n").encode()
    return files


def _coco(items: pl.DataFrame, boxes: Boxes) -> dict[str, bytes]:
    # Ids start at 1: 0-based category ids break CVAT and other readers.
    categories = {name: i for i, name in enumerate(_classes(items, boxes), start=1)}
    per_split: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"images": [], "annotations": []}
    )
    for row in items.iter_rows(named=True):
        doc = per_split[row["split"]]
        image_id = len(doc["images"]) + 1  # each split's file stands alone: ids from 1
        doc["images"].append(
            {
                "id": image_id,
                "file_name": row["name"],
                "width": row["width"],
                "height": row["height"],
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


def _hf(items: pl.DataFrame, boxes: Boxes, all_labels: Mapping[str, list[str]]) -> dict[str, bytes]:
    """``<split>/metadata.jsonl`` per split, or typed ``metadata.parquet`` where JSONL
    would not load (see :func:`_jsonl_loads_alike`); the same columns either way."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in items.iter_rows(named=True):
        own: Sequence[tuple[str, float, float, float, float]] = boxes.get(row["media_id"], ())
        rows[row["split"]].append(
            {
                "file_name": row["name"],
                "media_id": row["media_id"],
                "label": row["label"],
                "labels": all_labels.get(row["media_id"], []),
                "objects": {
                    "bbox": [[float(v) for v in box] for _c, *box in own],
                    "categories": [c for c, *_box in own],
                },
            }
        )
    jsonl = {
        split: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        for split, records in sorted(rows.items())
    }
    if _jsonl_loads_alike(list(jsonl.values())):
        return {f"{split}/metadata.jsonl": data for split, data in jsonl.items()}
    return {f"{split}/metadata.parquet": _hf_parquet(rows[split]) for split in jsonl}


# datasets (5.2) types a split's metadata.jsonl from its first 10 MB (then to the end of
# that line), requires every split's types to be the same, and casts each later 10 MB to
# them.
_HF_JSONL_CHUNK = 10 << 20


def _jsonl_loads_alike(files: list[bytes]) -> bool:
    """Whether ``datasets`` loads every split's JSONL with one set of column types.

    It does not when a list is empty (or a value null) in every row of a split's first
    10 MB, and has values in another split: ``datasets`` then fails with "different
    features"; or when a later 10 MB cannot be cast to the first's types."""
    import pyarrow as pa

    first = None
    for data in files:
        for i, table in enumerate(_jsonl_chunks(data)):
            if first is None:
                first = table.schema
            elif i == 0 and table.schema != first:
                return False
            elif i > 0:
                try:
                    table.cast(first)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    return False
    return True


def _jsonl_chunks(data: bytes) -> Iterator[Any]:
    """``data`` as the pyarrow tables ``datasets`` reads it in (each typed as a whole)."""
    import pyarrow.json as paj

    start = 0
    while start < len(data):
        end = data.find(b"\n", min(start + _HF_JSONL_CHUNK, len(data) - 1)) + 1 or len(data)
        options = paj.ReadOptions(block_size=end - start + 1)  # one block: the chunk's types
        yield paj.read_json(io.BytesIO(data[start:end]), read_options=options)
        start = end


def _hf_parquet(records: list[dict[str, Any]]) -> bytes:
    """One split's metadata as Parquet, typed explicitly, with the ``datasets`` features
    in the schema's ``huggingface`` metadata (where ``datasets`` reads them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.string()
    schema = pa.schema(
        [
            ("file_name", text),
            ("media_id", text),
            ("label", text),
            ("labels", pa.list_(text)),
            (
                "objects",
                pa.struct(
                    [("bbox", pa.list_(pa.list_(pa.float64()))), ("categories", pa.list_(text))]
                ),
            ),
        ]
    )

    def value(dtype: str) -> dict[str, Any]:
        return {"dtype": dtype, "_type": "Value"}

    def listed(feature: dict[str, Any]) -> dict[str, Any]:
        return {"feature": feature, "_type": "Sequence"}  # read as List since datasets 4

    features = {
        "file_name": value("string"),
        "media_id": value("string"),
        "label": value("string"),
        "labels": listed(value("string")),
        "objects": {
            "bbox": listed(listed(value("float64"))),
            "categories": listed(value("string")),
        },
    }
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records, schema=schema.with_metadata(metadata)), sink)
    return bytes(sink.getvalue().to_pybytes())
