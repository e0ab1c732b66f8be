"""The tidy tables' columns and values, from hand-made exports in every form (JSON,
Parquet with struct items, Parquet with JSON-text items)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import all_tables

from vlanalyze import open_export
from vlanalyze.query._schema import TABLES

# --- media columns, from hand-made exports in every form ---------------------------------


def _rich_items(kit: Any) -> list[dict[str, Any]]:
    obj_url = "http://app.visual-layer.com/dataset/d/data/image/m1?&object_id=obj-1"
    return [
        kit.item(
            "m1",
            file_size="48.27KB",
            insertion_time="2026-01-27T09:24:02.797550",
            capture_device="cam-A",
            metadata_items=[
                {
                    "type": "video_info",
                    "properties": {"video_name": "v.mp4", "frame_timestamp": 3.25},
                },
                {"type": "caption", "properties": {"text": "a cat", "source": "Model"}},
                {
                    "type": "user_tag",
                    "properties": {
                        "tag_name": "hero",
                        "assigned_date": "2026-01-28T10:00:00.000001",
                    },
                },
                {
                    "type": "object_label",
                    "properties": {
                        "category_name": "cat",
                        "source": "User",
                        "original_id": 3,
                        "bbox": [1, 2, 3, 4],
                        "uniqueness_score": 0.7,
                        "url": obj_url,
                        "metadata_items": [
                            {
                                "type": "issue",
                                "properties": {"issue_type": "blur", "confidence": 0.9},
                            }
                        ],
                    },
                },
                {
                    "type": "issue",
                    "properties": {
                        "issue_type": "duplicates",
                        "confidence": 0.8,
                        "duplicate_group_id": "g1",
                        "duplicate_threshold": 0.96,
                    },
                },
                {
                    "type": "image_label",
                    "properties": {"category_name": "cat", "source": "User", "original_id": 3},
                },
                {"type": "embedding_ref", "properties": {"model": "x", "dim": 4}},
            ],
        ),
        kit.item(
            "m2",
            file_size="3.38MB",
            media_type="video_frame",
            metadata_items=[
                {
                    "type": "video_info",
                    "properties": {
                        "video_id": "vid-2",
                        "frame_number": 45,
                        "timestamp": "00:00:01.500",
                    },
                },
                {"type": "caption", "properties": {"caption": "third-party key"}},
            ],
        ),
        kit.item("m3", file_size="512B"),
    ]


FORMS = ["json", "parquet-struct", "parquet-json-text"]


def _write_form(kit: Any, folder: Path, form: str, items: list[dict[str, Any]]) -> Path:
    if form == "json":
        return kit.write_json(folder / "metadata.json", items)
    items_as = "struct" if form == "parquet-struct" else "json"
    return kit.write_parquet(folder / "metadata.parquet", items, items_as=items_as)


@pytest.fixture(scope="module", params=FORMS)
def rich(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, export_kit: Any
) -> Iterator[tuple[str, dict[str, pl.DataFrame]]]:
    folder = tmp_path_factory.mktemp(f"rich-{request.param}")
    path = _write_form(export_kit, folder / "export", request.param, _rich_items(export_kit))
    with open_export(path, cache_dir=folder / "cache") as ex:
        yield request.param, all_tables(ex)


def test_media_columns(rich: tuple[str, dict[str, pl.DataFrame]]) -> None:
    _form, t = rich
    media = t["media"].sort("media_id")
    rows = {r["media_id"]: r for r in media.to_dicts()}
    assert media["file_size"].to_list() == [49428, round(3.38 * 1024 * 1024), 512]
    assert media["file_size"].dtype == pl.Int64
    assert media["insertion_time"].dtype == pl.Datetime("us")
    assert str(rows["m1"]["insertion_time"]) == "2026-01-27 09:24:02.797550"
    assert rows["m1"]["video_name"] == "v.mp4"
    assert rows["m1"]["frame_timestamp"] == 3.25
    assert rows["m1"]["frame_number"] is None
    assert rows["m2"]["video_name"] == "vid-2"  # documented video_info shape
    assert rows["m2"]["frame_timestamp"] == pytest.approx(1.5)
    assert rows["m2"]["frame_number"] == 45
    assert rows["m1"]["caption"] == "a cat"
    assert rows["m2"]["caption"] == "third-party key"
    assert rows["m3"]["caption"] is None and rows["m3"]["video_name"] is None
    assert rows["m1"]["capture_device"] == "cam-A"  # unknown top-level key kept
    assert rows["m2"]["capture_device"] is None
    assert rows["m1"]["file_name"] == "m1.jpg"  # image_filename mapped in Parquet
    assert media.columns[: len(EXPECTED_MEDIA_HEAD)] == EXPECTED_MEDIA_HEAD
    assert media.columns[-1] == "image_path"


EXPECTED_MEDIA_HEAD = [
    "media_id",
    "media_type",
    "file_name",
    "file_path",
    "file_size",
    "uniqueness_score",
    "width",
    "height",
    "cluster_id",
    "url",
    "media_status",
    "insertion_time",
    "video_name",
    "frame_timestamp",
    "frame_number",
    "caption",
]


def test_nested_tables(rich: tuple[str, dict[str, pl.DataFrame]]) -> None:
    _form, t = rich
    assert t["objects"].drop("url").to_dicts() == [
        {
            "object_id": "obj-1",
            "media_id": "m1",
            "category_name": "cat",
            "source": "User",
            "original_id": 3,
            "bbox_x": 1,
            "bbox_y": 2,
            "bbox_w": 3,
            "bbox_h": 4,
            "uniqueness_score": 0.7,
        }
    ]
    issues = t["issues"].sort("object_id", nulls_last=True).to_dicts()
    assert issues == [
        {
            "media_id": "m1",
            "object_id": "obj-1",
            "issue_type": "blur",
            "confidence": 0.9,
            "duplicate_group_id": None,
            "duplicate_threshold": None,
        },
        {
            "media_id": "m1",
            "object_id": None,
            "issue_type": "duplicates",
            "confidence": 0.8,
            "duplicate_group_id": "g1",
            "duplicate_threshold": 0.96,
        },
    ]
    assert t["labels"].to_dicts() == [
        {"media_id": "m1", "category_name": "cat", "source": "User", "original_id": 3}
    ]
    tags = t["tags"]
    assert tags["tag_name"].to_list() == ["hero"]
    assert tags["assigned_date"].dtype == pl.Datetime("us")
    assert t["captions"].sort("media_id").to_dicts() == [
        {"media_id": "m1", "text": "a cat", "source": "Model"},
        {"media_id": "m2", "text": "third-party key", "source": None},
    ]
    info = t["info"].to_dicts()[0]
    assert info["dataset"] == "hand-made"
    assert info["total_media_items"] == 3
    assert t["info"]["export_time"].dtype == pl.Datetime("us")


@pytest.mark.parametrize(
    "form",
    [
        "json",
        "parquet-struct",
        pytest.param(
            "parquet-json-text",
        ),
    ],
)
def test_unknown_item_type_lands_in_other_metadata(
    form: str, tmp_path: Path, export_kit: Any
) -> None:
    path = _write_form(export_kit, tmp_path / "export", form, _rich_items(export_kit))
    with open_export(path, cache_dir=tmp_path / "cache") as ex:
        other = ex.table("other_metadata").collect()
        assert ex.counts["other_metadata"] == 1
    assert other["media_id"].to_list() == ["m1"]
    assert other["type"].to_list() == ["embedding_ref"]
    assert json.loads(other["properties"].item()) == {"model": "x", "dim": 4}


def test_parquet_without_metadata_items_or_info(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "metadata.parquet"
    pq.write_table(
        pa.table({"media_id": ["a", "b"], "image_filename": ["a.jpg", "b.jpg"], "score2": [1, 2]}),
        path,
    )
    with open_export(path, cache_dir=tmp_path / "cache") as ex:
        media = ex.media.collect().sort("media_id")
        assert media["file_name"].to_list() == ["a.jpg", "b.jpg"]
        assert media["score2"].to_list() == ["1", "2"]  # unknown keys as text
        assert ex.counts["labels"] == 0 and ex.counts["info"] == 1


def test_empty_exports_have_every_table(tmp_path: Path, export_kit: Any) -> None:
    json_path = export_kit.write_json(tmp_path / "j" / "metadata.json", [])
    for path in (json_path,):
        with open_export(path, cache_dir=tmp_path / "cache") as ex:
            assert ex.counts == {t: (1 if t == "info" else 0) for t in TABLES}
            assert ex.sql("SELECT count(*) AS n FROM media")["n"].item() == 0
            assert "image_path" in ex.media.collect().columns
