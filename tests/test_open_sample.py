"""open_export on the real export (where present) and on both forms of the sample:
exact counts, values, and the same tables from JSON and Parquet."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest
from conftest import (
    SAMPLE_COUNTS,
    SAMPLE_EXPORT,
    SAMPLE_PARQUET,
    SAMPLE_ZIP,
    all_tables,
    sorted_frame,
)
from polars.testing import assert_frame_equal

from vlanalyze import open_export
from vlanalyze.query._schema import TABLES

# --- the real export ---------------------------------------------------------------------


def test_real_export_exact_counts(real_export: Path, tmp_path: Path) -> None:
    with open_export(real_export, cache_dir=tmp_path / "cache") as ex:
        assert ex.format == "json"
        assert ex.counts["media"] == 56
        assert ex.counts["labels"] == 678
        assert ex.counts["objects"] == 48
        issues = ex.issues.collect()
        assert issues.filter(pl.col("object_id").is_null()).height == 303
        assert issues.filter(pl.col("object_id").is_not_null()).height == 130
        levels = issues.filter(pl.col("issue_type") == "duplicates")["duplicate_threshold"]
        assert levels.n_unique() == 8
        # every object-level issue belongs to an object of the same item
        objects = ex.objects.collect()
        assert objects["object_id"].null_count() == 0
        joined = issues.filter(pl.col("object_id").is_not_null()).join(
            objects, on=["object_id", "media_id"], how="anti"
        )
        assert joined.height == 0
        media = ex.media.collect()
        assert media["media_id"].n_unique() == 56
        assert media["file_size"].dtype == pl.Int64
        assert media.filter(pl.col("file_name") == "output_000001.jpg")["file_size"].min() > 0
        assert media["video_name"].null_count() == 0  # all video frames, real video_info keys
        # real video_info has no frame_number: it comes from the name, output_000032.jpg -> 32
        assert media["frame_number"].null_count() == 0
        named = media.filter(pl.col("file_name") == "output_000001.jpg")["frame_number"]
        assert named.unique().to_list() == [1]
        assert ex.info.dataset == "Extreme"
        assert ex.info.total_media_items == 56
        assert asdict(ex.info.images) == {"files": 0, "found": 0, "missing": 56, "ambiguous": 0}


def test_real_export_first_item_values(real_export: Path, tmp_path: Path) -> None:
    first = json.loads(real_export.read_text(encoding="utf-8"))["media_items"][0]
    with open_export(real_export, cache_dir=tmp_path / "cache") as ex:
        row = ex.media.filter(pl.col("media_id") == first["media_id"]).collect().to_dicts()[0]
    assert first["file_size"] == "48.27KB"
    assert row["file_size"] == round(48.27 * 1024)  # 49428
    assert row["file_path"] == first["file_path"]  # ':' in a path survives
    video = next(m for m in first["metadata_items"] if m["type"] == "video_info")["properties"]
    assert row["video_name"] == video["video_name"]
    assert row["frame_timestamp"] == pytest.approx(video["frame_timestamp"])


# --- the sample: both forms --------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_tables(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, pl.DataFrame]]:
    # The Parquet form ships without images: give it the JSON form's, to match them too.
    parquet = tmp_path_factory.mktemp("sample-parquet-export")
    shutil.copytree(SAMPLE_EXPORT / "images", parquet / "images")
    shutil.copy2(SAMPLE_PARQUET, parquet / "metadata.parquet")
    out = {}
    for fmt, path in (("json", SAMPLE_EXPORT / "metadata.json"), ("parquet", parquet)):
        cache = tmp_path_factory.mktemp(f"sample-{fmt}") / "cache"
        with open_export(path, cache_dir=cache) as ex:
            assert ex.format == fmt
            out[fmt] = all_tables(ex)
            out[fmt]["_images"] = pl.DataFrame([asdict(ex.info.images)])
    return out


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_sample_counts(sample_tables: dict[str, dict[str, pl.DataFrame]], fmt: str) -> None:
    t = sample_tables[fmt]
    assert {name: t[name].height for name in TABLES} == SAMPLE_COUNTS
    media, labels, objects, issues = t["media"], t["labels"], t["objects"], t["issues"]
    assert dict(media["media_type"].value_counts().iter_rows()) == {"image": 26, "video_frame": 20}
    assert media.filter(pl.col("video_name").is_not_null()).height == 20
    # 10 frames carry frame_number (documented keys), the other 10 take it from their
    # file name (output_000032.jpg is frame 32), as Visual Layer's own notebook does
    assert media.filter(pl.col("frame_number").is_not_null()).height == 20
    assert media.filter(pl.col("frame_timestamp").is_not_null()).height == 20
    assert media["cluster_id"].n_unique() == 10
    assert media["capture_device"].drop_nulls().len() == 7
    assert media["media_status"].unique().to_list() == ["ACTIVE"]
    assert media["insertion_time"].dtype == pl.Datetime("us")
    assert media["insertion_time"].null_count() == 0
    hubble = media.filter(pl.col("file_path") == "photos/hubble_deep_field.png")
    assert hubble["file_size"].item() == round(1.10 * 1024 * 1024)
    assert dict(labels["source"].value_counts().iter_rows()) == {
        "User": 26,
        "Visual Layer": 225,
        "Model": 35,
    }
    assert labels.filter(pl.col("source") == "User")["original_id"].min() >= 0
    assert labels.filter(pl.col("source") != "User")["original_id"].unique().to_list() == [-1]
    assert dict(objects["source"].value_counts().iter_rows()) == {"User": 38, "Visual Layer": 75}
    assert objects["object_id"].null_count() == 0
    assert objects["object_id"].n_unique() == 113
    image_level = issues.filter(pl.col("object_id").is_null())
    object_level = issues.filter(pl.col("object_id").is_not_null())
    assert dict(image_level["issue_type"].value_counts().iter_rows()) == {
        "duplicates": 122,
        "outliers": 3,
        "blur": 4,
        "dark": 2,
        "bright": 2,
    }
    assert dict(object_level["issue_type"].value_counts().iter_rows()) == {
        "duplicates": 323,
        "blur": 10,
        "outliers": 2,
    }
    groups = (
        image_level.filter(pl.col("issue_type") == "duplicates")
        .group_by("duplicate_threshold")
        .agg(pl.col("duplicate_group_id").n_unique())
    )
    assert dict(groups.iter_rows()) == {0.96: 12, 0.97: 12, 0.98: 10, 0.99: 8, 1.0: 1}
    assert dict(t["tags"]["tag_name"].value_counts().iter_rows()) == {
        "hero": 2,
        "to-delete": 2,
        "reviewed": 1,
        "re-upload": 1,
        "needs-review": 1,
        "blurry-frame": 1,
    }
    assert t["captions"]["text"].null_count() == 0
    assert t["captions"]["source"].null_count() == 2  # the two {caption} ones have no source
    assert t["other_metadata"]["type"].to_list() == ["embedding_ref", "embedding_ref"]
    for props in t["other_metadata"]["properties"]:
        assert isinstance(json.loads(props), dict)
    assert t["_images"].to_dicts() == [{"files": 46, "found": 46, "missing": 0, "ambiguous": 0}]
    assert media["image_path"].null_count() == 0
    info = t["info"].to_dicts()[0]
    assert info["total_media_items"] == 46
    assert info["format"] == fmt


@pytest.mark.parametrize("table", TABLES)
def test_both_sample_forms_give_identical_tables(
    sample_tables: dict[str, dict[str, pl.DataFrame]], table: str
) -> None:
    from_json, from_parquet = sample_tables["json"][table], sample_tables["parquet"][table]
    if table == "info":
        assert from_json["format"].item() == "json"
        assert from_parquet["format"].item() == "parquet"
        from_json = from_json.drop("format", "source_path")
        from_parquet = from_parquet.drop("format", "source_path")
    assert from_json.height > 0
    assert_frame_equal(sorted_frame(from_json), sorted_frame(from_parquet))


def test_the_sample_opens_in_every_form(tmp_path: Path) -> None:
    forms = {
        SAMPLE_EXPORT: ("json", 46),
        SAMPLE_EXPORT / "metadata.json": ("json", 46),
        SAMPLE_PARQUET.parent: ("parquet", 0),
        SAMPLE_PARQUET: ("parquet", 0),
        SAMPLE_ZIP: ("json", 0),
    }
    for n, (path, (fmt, images)) in enumerate(forms.items()):
        with open_export(path, cache_dir=tmp_path / f"cache-{n}") as ex:
            assert (ex.format, ex.counts["media"], ex.info.images.found) == (fmt, 46, images)


def test_show_tables_lists_only_documented_tables(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for path in (SAMPLE_EXPORT, SAMPLE_ZIP):  # with images and without
        with open_export(path, cache_dir=tmp_path / path.name) as ex:
            names = ex.sql("SHOW TABLES")["name"].to_list()
            assert sorted(names) == sorted([*TABLES, "image_paths"])
            assert all(f"| `{name}` |" in readme for name in names)
            paths = ex.sql("SELECT count(*) AS n FROM image_paths")["n"][0]
            assert paths == ex.info.images.found
