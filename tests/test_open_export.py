"""Tests of open_export and the tidy tables (issue #2): the real export, both forms of the
sample, folder/ZIP/bare file, the cache, the media columns, image matching and the JSON
splitter. Every export the tests build lives in tmp_path; the sample is only read (its
cache always goes to tmp_path)."""

from __future__ import annotations

import itertools
import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import read_only
from polars.testing import assert_frame_equal

import vlanalyze
from vlanalyze import CacheError, ExportFormatError, QueryError, open_export
from vlanalyze.query._schema import TABLES

# Counts stated in sample_data/README.md.
SAMPLE_COUNTS = {
    "media": 46,
    "labels": 286,
    "objects": 113,
    "issues": 133 + 335,
    "tags": 8,
    "captions": 32,
    "other_metadata": 2,
    "info": 1,
}


def _tables(ex: vlanalyze.Export) -> dict[str, pl.DataFrame]:
    return {t: ex.table(t).collect() for t in TABLES}


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(df.columns, nulls_last=True)


def _manifests(root: Path) -> list[Path]:
    return list(root.rglob("manifest.json"))


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
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "export"
    out = {}
    for fmt in ("json", "parquet"):
        cache = tmp_path_factory.mktemp(f"sample-{fmt}") / "cache"
        with open_export(sample / f"metadata.{fmt}", cache_dir=cache) as ex:
            assert ex.format == fmt
            out[fmt] = _tables(ex)
            out[fmt]["_images"] = pl.DataFrame([asdict(ex.info.images)])
    return out


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_sample_counts(sample_tables: dict[str, dict[str, pl.DataFrame]], fmt: str) -> None:
    t = sample_tables[fmt]
    assert {name: t[name].height for name in TABLES} == SAMPLE_COUNTS
    media, labels, objects, issues = t["media"], t["labels"], t["objects"], t["issues"]
    assert dict(media["media_type"].value_counts().iter_rows()) == {"image": 26, "video_frame": 20}
    assert media.filter(pl.col("video_name").is_not_null()).height == 20
    assert media.filter(pl.col("frame_number").is_not_null()).height == 10  # documented keys
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
    assert_frame_equal(_sorted(from_json), _sorted(from_parquet))


# --- where an export is: folder, ZIP, bare file ------------------------------------------


def test_open_folder_zip_and_bare_file_agree(
    sample_json_copy: Path, tmp_path: Path, export_kit: Any
) -> None:
    archive = export_kit.zip_folder(sample_json_copy, tmp_path / "sample.zip")
    results = {}
    for name, path in {
        "folder": sample_json_copy,
        "zip": archive,
        "file": sample_json_copy / "metadata.json",
    }.items():
        with open_export(path, cache_dir=tmp_path / f"cache-{name}") as ex:
            assert ex.counts == SAMPLE_COUNTS
            results[name] = ex.media.select("media_id", "image_path").collect().sort("media_id")
            assert ex.info.images.found == 46, name
    assert_frame_equal(results["folder"], results["zip"])
    assert_frame_equal(results["folder"], results["file"])
    assert results["zip"]["image_path"].str.starts_with("images/").all()


def test_zip_is_read_in_place(sample_json_copy: Path, tmp_path: Path, export_kit: Any) -> None:
    workdir = tmp_path / "downloads"
    workdir.mkdir()
    archive = export_kit.zip_folder(sample_json_copy, workdir / "export.zip")
    with open_export(archive) as ex:
        assert ex.root == archive
        assert ex.cache_path == workdir / ".export.zip.vlanalyze-cache"
        assert asdict(ex.info.images) == {"files": 46, "found": 46, "missing": 0, "ambiguous": 0}
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
        paths = ex.media.collect()["image_path"]
        assert set(paths) <= names  # image_path names a member of the ZIP
    assert sorted(p.name for p in workdir.iterdir()) == [
        ".export.zip.vlanalyze-cache",
        "export.zip",
    ]
    extracted = [p for p in ex.cache_path.rglob("*") if p.suffix in (".jpg", ".png", ".json")]
    assert [p.name for p in extracted] == ["manifest.json"]  # no images, no metadata copy


def test_zip_with_a_top_folder(sample_json_copy: Path, tmp_path: Path, export_kit: Any) -> None:
    archive = export_kit.zip_folder(sample_json_copy, tmp_path / "x.zip", prefix="export/")
    with open_export(archive, cache_dir=tmp_path / "cache") as ex:
        assert ex.counts["media"] == 46
        assert ex.info.images.found == 46


def test_folder_with_both_metadata_files_errors_with_hint(
    sample_export: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportFormatError) as err:
        open_export(sample_export, cache_dir=tmp_path / "cache")
    assert "both metadata.json and metadata.parquet" in str(err.value)
    assert err.value.hint is not None and "metadata.json" in err.value.hint
    assert not (tmp_path / "cache").exists()
    assert not (sample_export / ".vlanalyze-cache").exists()


def test_missing_path_errors(tmp_path: Path) -> None:
    with pytest.raises(ExportFormatError, match="no such file"):
        open_export(tmp_path / "nope")


def test_folder_without_metadata_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportFormatError, match=r"no metadata\.json or metadata\.parquet"):
        open_export(tmp_path / "empty")


def test_export_folder_one_level_down(sample_json_copy: Path, tmp_path: Path) -> None:
    parent = sample_json_copy.parent
    with open_export(parent, cache_dir=tmp_path / "cache") as ex:
        assert ex.counts["media"] == 46
        assert ex.info.images.found == 46


# --- the cache ---------------------------------------------------------------------------


@pytest.fixture
def hand_json(tmp_path: Path, export_kit: Any) -> Path:
    items = [export_kit.item(f"m{i}") for i in range(5)]
    return export_kit.write_json(tmp_path / "export" / "metadata.json", items)


def test_default_cache_locations(
    hand_json: Path, tmp_path: Path, export_kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLANALYZE_CACHE_DIR", raising=False)
    folder = hand_json.parent
    with open_export(folder) as ex:
        assert ex.cache_path == folder / ".vlanalyze-cache"
    with open_export(hand_json) as ex:
        assert ex.cache_path == folder / ".metadata.json.vlanalyze-cache"
    assert (folder / ".vlanalyze-cache" / "manifest.json").is_file()
    assert (folder / ".metadata.json.vlanalyze-cache" / "manifest.json").is_file()
    assert not list(tmp_path.rglob("*.vla-tmp-*"))


def test_cache_is_reused(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.counts["media"] == 5
    before = (cache.stat().st_ino, (cache / "manifest.json").stat().st_mtime_ns)

    def no_rebuild(done: int, total: int | None) -> None:
        raise AssertionError("the cache was rebuilt")  # a build always reports progress

    with open_export(hand_json, cache_dir=cache, on_progress=no_rebuild) as ex:
        assert ex.counts["media"] == 5
        assert ex.sql("SELECT count(*) AS n FROM media")["n"].item() == 5
    assert (cache.stat().st_ino, (cache / "manifest.json").stat().st_mtime_ns) == before


def test_cache_is_rebuilt_when_the_metadata_changes(
    hand_json: Path, tmp_path: Path, export_kit: Any
) -> None:
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.counts["media"] == 5
    export_kit.write_json(hand_json, [export_kit.item(f"m{i}") for i in range(4)])
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.counts["media"] == 4
        assert ex.media.collect().height == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "export"]  # no stale copy


def test_refresh_rebuilds(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    open_export(hand_json, cache_dir=cache).close()
    inode = cache.stat().st_ino
    calls: list[tuple[int, int]] = []
    with open_export(
        hand_json, cache_dir=cache, refresh=True, on_progress=lambda d, t: calls.append((d, t))
    ) as ex:
        assert ex.counts["media"] == 5
    assert cache.stat().st_ino != inode
    assert calls and calls[-1][0] <= calls[-1][1]
    assert not list(tmp_path.rglob("*.vla-tmp-*")) and not list(tmp_path.rglob("*.stale-*"))


def test_cache_dir_argument(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "elsewhere" / "deep" / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.cache_path == cache
    assert (cache / "manifest.json").is_file()
    assert sorted(p.name for p in hand_json.parent.iterdir()) == ["metadata.json"]


def test_cache_dir_from_environment(
    hand_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "env-cache"
    monkeypatch.setenv("VLANALYZE_CACHE_DIR", str(base))
    with open_export(hand_json) as ex:
        assert ex.cache_path.parent == base
        assert ex.cache_path.name.startswith("metadata.json-")
    assert _manifests(base)
    assert sorted(p.name for p in hand_json.parent.iterdir()) == ["metadata.json"]


def test_read_only_export_folder_caches_in_user_cache_dir(
    hand_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = hand_json.parent
    monkeypatch.delenv("VLANALYZE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with read_only(folder):
        with open_export(folder) as ex:
            assert ex.cache_path.is_relative_to(tmp_path / "xdg" / "vlanalyze")
            assert ex.counts["media"] == 5
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.json"]


def test_cache_path_that_is_not_ours_is_an_error(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "mine"
    cache.mkdir()
    (cache / "notes.txt").write_text("precious")
    with pytest.raises(CacheError, match="not a vlanalyze cache") as err:
        open_export(hand_json, cache_dir=cache)
    assert err.value.hint is not None
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    assert (cache / "notes.txt").read_text() == "precious"


def test_cache_path_that_is_a_file_is_a_cache_error(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "a-file"
    cache.write_text("precious")
    with pytest.raises(CacheError):
        open_export(hand_json, cache_dir=cache)
    assert cache.read_text() == "precious"


def test_damaged_manifest_is_rebuilt(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    open_export(hand_json, cache_dir=cache).close()
    (cache / "manifest.json").write_text("{not json")
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.counts["media"] == 5
    json.loads((cache / "manifest.json").read_text())


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_failed_build_leaves_no_trusted_cache(
    hand_json: Path, tmp_path: Path, interrupt: type[BaseException]
) -> None:
    def boom(done: int, total: int | None) -> None:
        raise interrupt("interrupted")  # mid-build, after a batch was written

    with pytest.raises(interrupt):
        open_export(hand_json, cache_dir=tmp_path / "cache", on_progress=boom)
    assert not _manifests(tmp_path)
    assert not list(tmp_path.rglob("*.vla-tmp-*"))


# --- the Export object -------------------------------------------------------------------


def test_export_api(hand_json: Path, tmp_path: Path) -> None:
    with open_export(hand_json, cache_dir=tmp_path / "cache") as ex:
        assert "5 media" in repr(ex)
        df = ex.sql("SELECT media_id FROM media WHERE media_id = $m", params={"m": "m3"})
        assert df["media_id"].to_list() == ["m3"]
        with pytest.raises(QueryError, match="tables: media"):
            ex.table("nosuch")
        with pytest.raises(QueryError):
            ex.sql("SELEC 1")
        with ex.duckdb() as con:
            assert con.execute("SELECT count(*) FROM media").fetchall() == [(5,)]
            names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
            assert set(TABLES) <= names


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
        yield request.param, _tables(ex)


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


# --- image resolution --------------------------------------------------------------------


def test_image_resolution(tmp_path: Path, export_kit: Any) -> None:
    kit = export_kit
    folder = tmp_path / "export"
    items = [
        kit.item("p1", file_path="d/p1.jpg", file_name="p1.jpg"),  # file_path mirror
        kit.item("id2", file_path="x/y/some.jpg", file_name="some.jpg"),  # <media_id>.jpg
        kit.item("n3", file_path="elsewhere/n3name.jpg", file_name="n3name.jpg"),  # unique name
        kit.item("v1", file_path="vidA.mp4/output_000001.jpg", file_name="output_000001.jpg"),
        kit.item("v2", file_path="vidB.mp4/output_000001.jpg", file_name="output_000001.jpg"),
        kit.item("gone", file_path="nope/none.jpg", file_name="none.jpg"),
    ]
    kit.write_json(folder / "metadata.json", items)
    for rel in [
        "d/p1.jpg",
        "id2.jpg",
        "flat/n3name.jpg",
        "a/output_000001.jpg",
        "b/output_000001.jpg",
    ]:
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / rel).write_bytes(b"\xff\xd8")
    with open_export(folder, cache_dir=tmp_path / "cache") as ex:
        assert asdict(ex.info.images) == {"files": 5, "found": 3, "missing": 3, "ambiguous": 2}
        paths = dict(ex.media.select("media_id", "image_path").collect().iter_rows())
        via_sql = dict(ex.sql("SELECT media_id, image_path FROM media").iter_rows())
    expected = {
        "p1": "images/d/p1.jpg",
        "id2": "images/id2.jpg",
        "n3": "images/flat/n3name.jpg",
        "v1": None,
        "v2": None,
        "gone": None,
    }
    assert paths == expected
    assert via_sql == expected
    for rel in filter(None, expected.values()):
        assert (folder / rel).is_file()


def test_file_path_wins_over_name(tmp_path: Path, export_kit: Any) -> None:
    folder = tmp_path / "export"
    export_kit.write_json(
        folder / "metadata.json",
        [export_kit.item("a", file_path="v.mp4/output_000001.jpg", file_name="output_000001.jpg")],
    )
    for rel in ["v.mp4/output_000001.jpg", "w.mp4/output_000001.jpg"]:
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / rel).write_bytes(b"x")
    with open_export(folder, cache_dir=tmp_path / "cache") as ex:
        assert ex.media.collect()["image_path"].to_list() == ["images/v.mp4/output_000001.jpg"]
        assert ex.info.images.ambiguous == 0


def test_no_images_folder(hand_json: Path, tmp_path: Path) -> None:
    with open_export(hand_json.parent, cache_dir=tmp_path / "cache") as ex:
        assert asdict(ex.info.images) == {"files": 0, "found": 0, "missing": 5, "ambiguous": 0}
        assert ex.media.collect()["image_path"].null_count() == 5
        assert ex.sql("SELECT count(image_path) AS n FROM media")["n"].item() == 0


# --- the JSON splitter -------------------------------------------------------------------

TRICKY = 'quote " and "}, {"media_id": "x", "file_name": "y"} and ], [ and \\ é✓😀 '


def _splitter_items(kit: Any, n: int = 40) -> list[dict[str, Any]]:
    items = []
    for i in range(n):
        items.append(
            kit.item(
                f"m{i:03d}",
                file_name=f"ünï-{i}.jpg",
                metadata_items=[
                    {"type": "caption", "properties": {"text": f"{TRICKY}{i}", "source": "Model"}},
                    {
                        "type": "image_label",
                        "properties": {
                            "category_name": f"c{i % 3}",
                            "source": "User",
                            "original_id": i,
                        },
                    },
                ],
            )
        )
    items[-1]["metadata_items"][0]["properties"]["text"] = "ends with a backslash \\"
    return items


LAYOUTS = {
    "compact": {"separators": (",", ":")},
    "default": {},
    "pretty": {"indent": 2},
    "pretty-unicode": {"indent": 2, "ensure_ascii": False},
    "info-after-items": {"info_last": True},
    "bom": {"bom": True, "ensure_ascii": False},
}

SIZES = {
    "defaults": None,
    "chunk-200": (200, 64, 200),
    "chunk-1000": (1000, 128, 500),
    "chunk-37": (37, 16, 16),
}


def _sizes(sizes: tuple[int, int, int] | None) -> dict[str, int]:
    """open_export's tuning arguments for (chunk, head, batch) bytes; {} for the defaults."""
    if sizes is None:
        return {}
    return dict(zip(("chunk_bytes", "head_bytes", "batch_bytes"), sizes, strict=True))


def _passes(progress: list[int]) -> int:
    """How many passes over the file the progress shows: a restart goes back to the start."""
    return 1 + sum(later < earlier for earlier, later in itertools.pairwise(progress))


@pytest.mark.parametrize("sizes", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_splitter_layouts_and_chunk_sizes(
    layout: dict[str, Any],
    sizes: tuple[int, int, int] | None,
    tmp_path: Path,
    export_kit: Any,
) -> None:
    items = _splitter_items(export_kit)
    path = export_kit.write_json(tmp_path / "metadata.json", items, **layout)
    with open_export(path, cache_dir=tmp_path / "cache", **_sizes(sizes)) as ex:
        media = ex.media.collect()
        captions = ex.captions.collect()
        labels = ex.labels.collect()
        info = ex.info
    assert media["media_id"].to_list() == [i["media_id"] for i in items]  # file order kept
    assert media["file_name"].to_list() == [i["file_name"] for i in items]
    expected_text = {i["media_id"]: i["metadata_items"][0]["properties"]["text"] for i in items}
    assert dict(captions.select("media_id", "text").iter_rows()) == expected_text
    assert labels["original_id"].sort().to_list() == list(range(40))
    assert info.dataset == "hand-made"
    assert info.total_media_items == 3


def test_fast_path_cuts_really_happen(tmp_path: Path, export_kit: Any) -> None:
    path = export_kit.write_json(tmp_path / "metadata.json", _splitter_items(export_kit))
    progress: list[int] = []
    # The exact path's batches are made too big to show more than one step.
    sizes = {"chunk_bytes": 200, "head_bytes": 64, "batch_bytes": 1 << 30}
    with open_export(
        path, cache_dir=tmp_path / "cache", on_progress=lambda d, t: progress.append(d), **sizes
    ) as ex:
        assert ex.counts["media"] == 40
    assert _passes(progress) == 1  # strings with '}, {"media_id":' never fool the cut
    assert len(progress) > 5  # one step per two chunks: the file was really cut


def _nested_items(kit: Any, first_nested: int) -> list[dict[str, Any]]:
    # An unknown key holding objects that start with "media_id": a false cut point.
    return [
        kit.item(f"m{i:03d}", related=[{"media_id": "r1"}, {"media_id": "r2"}])
        if i >= first_nested
        else kit.item(f"m{i:03d}")
        for i in range(30)
    ]


def test_false_cut_in_a_later_chunk_recovers_on_the_exact_path(
    tmp_path: Path, export_kit: Any
) -> None:
    items = _nested_items(export_kit, first_nested=20)
    path = export_kit.write_json(tmp_path / "metadata.json", items, separators=(",", ":"))
    progress: list[int] = []
    # The cut target lands before "related"; small exact batches make the restart show.
    sizes = {"chunk_bytes": 100, "head_bytes": 64, "batch_bytes": 100}
    with open_export(
        path, cache_dir=tmp_path / "cache", on_progress=lambda d, t: progress.append(d), **sizes
    ) as ex:
        media = ex.media.collect()
    assert _passes(progress) == 2  # the fast path, then the exact path from the start
    assert media["media_id"].to_list() == [i["media_id"] for i in items]
    assert json.loads(media["related"][25]) == [{"media_id": "r1"}, {"media_id": "r2"}]


def test_false_cut_in_the_first_chunk_recovers_on_the_exact_path(
    tmp_path: Path, export_kit: Any
) -> None:
    items = _nested_items(export_kit, first_nested=0)
    path = export_kit.write_json(tmp_path / "metadata.json", items, separators=(",", ":"))
    sizes = _sizes((100, 64, 100_000))
    with open_export(path, cache_dir=tmp_path / "cache", **sizes) as ex:
        assert ex.media.collect()["media_id"].to_list() == [i["media_id"] for i in items]


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param(None, id="defaults"),
        pytest.param(
            (300, 64, 100_000),
            id="small-chunks",
        ),
    ],
)
def test_unknown_key_first_seen_late_is_kept(
    sizes: tuple[int, int, int] | None,
    tmp_path: Path,
    export_kit: Any,
) -> None:
    items = [
        export_kit.item(f"m{i:03d}", capture_device="cam")
        if i >= 25
        else export_kit.item(f"m{i:03d}")
        for i in range(30)
    ]
    path = export_kit.write_json(tmp_path / "metadata.json", items, separators=(",", ":"))
    with open_export(path, cache_dir=tmp_path / "cache", **_sizes(sizes)) as ex:
        media = ex.media.collect()
    assert "capture_device" in media.columns
    assert media["capture_device"].drop_nulls().to_list() == ["cam"] * 5


def test_empty_media_items_in_every_layout(tmp_path: Path, export_kit: Any) -> None:
    for i, layout in enumerate(LAYOUTS.values()):
        path = export_kit.write_json(tmp_path / f"e{i}" / "metadata.json", [], **layout)
        with open_export(path, cache_dir=tmp_path / f"cache{i}") as ex:
            assert ex.counts["media"] == 0
            assert ex.info.dataset == "hand-made"


def test_unknown_top_level_keys_go_to_info(tmp_path: Path, export_kit: Any) -> None:
    path = tmp_path / "metadata.json"
    body = {"info": export_kit.info, "media_items": [export_kit.item("a")], "extra": {"k": 1}}
    path.write_text(json.dumps(body))
    with open_export(path, cache_dir=tmp_path / "cache") as ex:
        info = ex.table("info").collect().to_dicts()[0]
    assert json.loads(info["extra"]) == {"k": 1}


def test_sample_survives_small_chunks(sample_export: Path, tmp_path: Path) -> None:
    with open_export(sample_export / "metadata.json", cache_dir=tmp_path / "big") as ex:
        reference = _tables(ex)
    shutil.copy2(sample_export / "metadata.json", tmp_path / "metadata.json")
    sizes = _sizes((4096, 1024, 4096))
    with open_export(tmp_path / "metadata.json", cache_dir=tmp_path / "small", **sizes) as ex:
        small = _tables(ex)
    for table in TABLES:
        a, b = reference[table], small[table]
        if table == "info":
            a, b = a.drop("source_path"), b.drop("source_path")
        if table == "media":
            a, b = a.drop("image_path"), b.drop("image_path")
            assert a["media_id"].to_list() == b["media_id"].to_list()  # file order kept
        assert_frame_equal(_sorted(a), _sorted(b))  # other tables: row order is no contract
