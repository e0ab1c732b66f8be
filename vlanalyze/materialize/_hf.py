"""The ``hf`` layout's files: what ``datasets.load_dataset("imagefolder")`` reads.

Each split's ``metadata.jsonl`` (``file_name``, ``label``, ``labels``, ``objects`` with
``bbox`` and ``categories``), or typed ``metadata.parquet`` where ``datasets`` would type
the splits' JSONL differently; and the split folder names ``datasets`` loads. Pure.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import polars as pl

__all__ = ["Boxes", "hf_files", "hf_notes", "hf_split"]

Boxes = Mapping[str, list[tuple[str, float, float, float, float]]]  # media_id -> boxes


# datasets' split keywords (datasets.data_files.SPLIT_KEYWORDS): a folder named so, or so
# and then one of "-._ " or a digit, is that split.
_HF_SPLITS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}


def hf_split(folder: str) -> str | None:
    """The split ``datasets`` loads from the folder ``folder`` (None: none)."""
    for split, keywords in _HF_SPLITS.items():
        for word in keywords:
            if folder == word or re.match(rf"{word}[-._ 0-9]", folder):
                return split
    return None


def hf_notes(splits: Sequence[str]) -> list[str]:
    groups: dict[str, list[str]] = defaultdict(list)
    for folder in sorted(splits):
        groups[str(hf_split(folder))].append(folder)
    return [
        f"hf: splits {', '.join(folders)} are all datasets' {split} split: it loads their "
        "images together"
        for split, folders in groups.items()
        if len(folders) > 1
    ]


def hf_files(
    items: pl.DataFrame, boxes: Boxes, all_labels: Mapping[str, list[str]]
) -> dict[str, bytes]:
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
