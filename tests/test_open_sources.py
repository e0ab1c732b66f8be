"""Where an export is: a folder (or one level down), the ZIP read in place, a bare
metadata file; and the errors when none is there."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_COUNTS, SAMPLE_EXPORT, SAMPLE_PARQUET
from polars.testing import assert_frame_equal

from vlanalyze import ExportFormatError, open_export
from vlanalyze._metadata import read_export_info

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
        assert ex.cache_path.is_relative_to(workdir / ".vlanalyze-cache")
        assert asdict(ex.info.images) == {"files": 46, "found": 46, "missing": 0, "ambiguous": 0}
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
        paths = ex.media.collect()["image_path"]
        assert set(paths) <= names  # image_path names a member of the ZIP
    assert sorted(p.name for p in workdir.iterdir()) == [".vlanalyze-cache", "export.zip"]
    extracted = [p for p in ex.cache_path.rglob("*") if p.suffix in (".jpg", ".png", ".json")]
    # No images, no metadata copy: only our manifest and the stored summary.
    assert sorted(p.name for p in extracted) == ["manifest.json", "stored-summary-top10.json"]


def test_zip_with_a_top_folder(sample_json_copy: Path, tmp_path: Path, export_kit: Any) -> None:
    archive = export_kit.zip_folder(sample_json_copy, tmp_path / "x.zip", prefix="export/")
    with open_export(archive, cache_dir=tmp_path / "cache") as ex:
        assert ex.counts["media"] == 46
        assert ex.info.images.found == 46


def test_folder_with_both_metadata_files_reads_the_parquet(tmp_path: Path) -> None:
    folder = tmp_path / "both"
    shutil.copytree(SAMPLE_EXPORT, folder)
    shutil.copy2(SAMPLE_PARQUET, folder / "metadata.parquet")
    with open_export(folder, cache_dir=tmp_path / "cache") as ex:
        assert ex.format == "parquet"
        assert ex.counts["media"] == 46
        assert ex.info.images.found == 46
        metadata = ex.info.metadata
    assert metadata == f"{folder / 'metadata.parquet'} (metadata.json beside it is not read)"
    assert read_export_info(folder) == json.loads((folder / "metadata.json").read_text())["info"]


def test_zip_with_both_metadata_files_reads_the_parquet(tmp_path: Path) -> None:
    archive = tmp_path / "both.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(SAMPLE_EXPORT / "metadata.json", "metadata.json")
        zf.write(SAMPLE_PARQUET, "metadata.parquet")
    with open_export(archive, cache_dir=tmp_path / "cache") as ex:
        assert ex.format == "parquet"
        assert ex.info.metadata == f"{archive}:metadata.parquet"


def test_zip_with_two_exports_side_by_side_errors(tmp_path: Path) -> None:
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(SAMPLE_EXPORT / "metadata.json", "a/metadata.json")
        zf.write(SAMPLE_PARQUET, "a/metadata.parquet")
        zf.write(SAMPLE_EXPORT / "metadata.json", "b/metadata.json")
    with pytest.raises(ExportFormatError, match=r"two exports, in a/ and b/"):
        open_export(archive, cache_dir=tmp_path / "cache")


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
