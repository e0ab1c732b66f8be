"""Helpers for the materialize tests: real (tiny) JPEG files and small exports with boxes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# A real 2x2 baseline JPEG (Pillow wrote it). jpeg() adds a COM segment naming the file,
# so every image differs and stays a valid JPEG.
_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a"
    "181616183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064"
    "785c656763ffdb0043011112121815182f1a1a2f63423842636363636363636363636363636363636363"
    "6363636363636363636363636363636363636363636363636363636363636363ffc00011080002000203"
    "012200021101031101ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d010203000411051221314106135161072271143281"
    "91a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748"
    "494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899"
    "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5"
    "e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405"
    "060708090a0bffc400b51100020102040403040705040400010277000102031104052131061241510761"
    "711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a3536373839"
    "3a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a"
    "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7"
    "d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f00c0a28a2b80fad3"
    "ffd9"
)


def jpeg(tag: str, pad: int = 0) -> bytes:
    """A valid JPEG unique to ``tag`` (``pad`` extra comment bytes make it bigger)."""
    text = (tag + "." * pad).encode("utf-8")[:65000]
    head = 20  # SOI and the JFIF segment come first
    return _JPEG[:head] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + _JPEG[head:]


def write_images(root: Path, file_paths: list[str], pad: int = 0) -> None:
    """A real JPEG at ``root/<file_path>`` for each file path."""
    for fp in file_paths:
        target = root / fp
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(jpeg(fp, pad))


def item(media_id: str, file_path: str, **fields: Any) -> dict[str, Any]:
    """A media item in the real format (``labels``: image labels, ``boxes``: objects)."""
    labels = fields.pop("labels", [])
    boxes = fields.pop("boxes", [])
    meta: list[dict[str, Any]] = [
        {"type": "image_label", "properties": {"category_name": n, "source": s, "original_id": -1}}
        for n, s in labels
    ]
    meta += [
        {
            "type": "object_label",
            "properties": {
                "category_name": cat,
                "source": "User",
                "original_id": 1,
                "bbox": list(box),
                "uniqueness_score": 0.5,
                "url": f"http://app.visual-layer.com/x?object_id={media_id}-{i}",
            },
        }
        for i, (cat, box) in enumerate(boxes)
    ]
    base: dict[str, Any] = {
        "media_id": media_id,
        "media_type": "image",
        "file_name": file_path.rsplit("/", 1)[-1],
        "file_path": file_path,
        "file_size": "1.00KB",
        "uniqueness_score": 0.5,
        "height": 100,
        "width": 200,
        "url": f"http://app.visual-layer.com/dataset/d/data/image/{media_id}",
        "cluster_id": "c1",
        "metadata_items": meta,
    }
    base.update(fields)
    return base


def write_export(folder: Path, items: list[dict[str, Any]], *, images: bool = True) -> Path:
    """``folder/metadata.json`` and, with ``images``, ``folder/images/<file_path>``."""
    folder.mkdir(parents=True, exist_ok=True)
    info = {"schema_version": "1.1", "dataset": "t", "total_media_items": len(items)}
    text = json.dumps({"info": info, "media_items": items})
    (folder / "metadata.json").write_text(text, encoding="utf-8")
    if images:
        write_images(folder / "images", [str(i["file_path"]) for i in items])
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative posix path -> bytes), links followed."""
    found = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            found[path.relative_to(folder).as_posix()] = path.read_bytes()
    return found
