"""An export is data, never code (issue #12): crafted keys, column names and folder names
load as data, with the right values, and write nothing outside the cache; an export that
cannot load fails with one line."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from conftest import error_line

from vlanalyze import ExportFormatError, open_export
from vlanalyze.cli import main

PWN = "/tmp/vla-pwned"  # what the crafted SQL below would write, if it ran

# Keys that are SQL (each would write a file or break the statement if pasted into SQL),
# odd text, names of our own columns and of our internal aliases.
HOSTILE_KEYS = [
    f"x\" VARCHAR); COPY (SELECT 1) TO '{PWN}-1.csv'; --",
    f"x'); COPY (SELECT 1) TO '{PWN}-2.csv'; --",
    'a"b',
    "it's",
    "line\nbreak",
    "--",
    "/*",
    "Foo",
    "foo",
    "",
    "a/b~c",
    "é ü",
    "vi",
    "cap",
    "_vla_vi",
    "_vla_x0",
    "src",
    "image_path",
    "frame_number",
    "caption",
    "Media_Type",
]


def _expected_names() -> dict[str, str]:
    """The documented media column of each hostile key (README: unknown top-level keys)."""
    return {
        **{k: k for k in HOSTILE_KEYS},
        "foo": "foo_2",  # "Foo" sorts first and takes the name; SQL names ignore case
        "": "export_",
        "image_path": "export_image_path",
        "frame_number": "export_frame_number",
        "caption": "export_caption",
        "Media_Type": "export_Media_Type",
    }


def _items(kit: Any, n: int = 6, *, nested: bool = True) -> list[dict[str, object]]:
    items = []
    for i in range(n):
        extra: dict[str, object] = {k: f"{i}:{k}" for k in HOSTILE_KEYS}
        if i == 2 and nested:
            extra['a"b'] = {"nested": [1, 2]}  # a non-string value comes out as JSON text
        items.append(kit.item(f"m{i}", **extra))
    return items


def _files_outside(root: Path, cache: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_relative_to(cache)}


def _check_media(media: pl.DataFrame, n: int = 6, *, nested: bool = True) -> None:
    names = _expected_names()
    assert media.height == n
    for key, column in names.items():
        values = media.sort("media_id")[column].to_list()
        want = [f"{i}:{key}" for i in range(n)]
        if key == 'a"b' and nested:
            want[2] = json.dumps({"nested": [1, 2]}, separators=(",", ":"))
        assert values == want, (key, column)
    assert media["media_type"].to_list() == ["image"] * n  # ours, not the export's Media_Type
    assert media["image_path"].to_list() == [None] * n  # ours: no images in this export


def _no_pwn() -> None:
    assert not [p for p in Path("/tmp").glob("vla-pwned*")], "SQL from the export ran"


@pytest.mark.parametrize("form", ["json", "zip", "parquet"])
def test_hostile_keys_load_as_data(form: str, tmp_path: Path, export_kit: Any) -> None:
    folder = tmp_path / "export"
    nested = form != "parquet"  # a Parquet column has one type
    items = _items(export_kit, nested=nested)
    if form == "parquet":
        path = export_kit.write_parquet(folder / "metadata.parquet", items)
    else:
        path = export_kit.write_json(folder / "metadata.json", items)
    if form == "zip":
        path = export_kit.zip_folder(folder, tmp_path / "export.zip")
    before = _files_outside(tmp_path, tmp_path / "cache")
    with open_export(path, cache_dir=tmp_path / "cache") as ex:
        _check_media(ex.media.collect(), nested=nested)
        _check_media(ex.sql("SELECT * FROM media"), nested=nested)
        assert ex.sql('SELECT count("a""b") AS n FROM media')["n"].item() == 6
    assert _files_outside(tmp_path, tmp_path / "cache") == before
    _no_pwn()


def test_hostile_parquet_column_names(tmp_path: Path, export_kit: Any) -> None:
    """Parquet column names that SQL would read as code, or as one name, or as ours."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    crafted = f"x\" AS VARCHAR) AS y, (SELECT 1) TO '{PWN}-3.csv' --"
    columns = {
        "media_id": ["a", "b"],
        "image_filename": ["a.jpg", "b.jpg"],
        crafted: ["1", "2"],
        "COLUMN": [1, 2],
        "Media_Id": ["c", "d"],
        "SRC": [[1], [2]],
    }
    pq.write_table(pa.table(columns), tmp_path / "metadata.parquet")
    with open_export(tmp_path / "metadata.parquet", cache_dir=tmp_path / "cache") as ex:
        media = ex.media.collect().sort("media_id")
    assert media["media_id"].to_list() == ["a", "b"]
    assert media["file_name"].to_list() == ["a.jpg", "b.jpg"]
    assert media[
        next(iter(columns.keys() - {"media_id", "image_filename"} - {"COLUMN", "Media_Id", "SRC"}))
    ].to_list() == ["1", "2"]
    assert media["COLUMN"].to_list() == ["1", "2"]
    assert media["export_Media_Id"].to_list() == ["c", "d"]
    assert media["SRC"].to_list() == ["[1]", "[2]"]
    _no_pwn()


def test_a_key_on_few_items_of_later_batches_keeps_every_value(
    tmp_path: Path, export_kit: Any
) -> None:
    """Unknown keys are found exactly, not by sampling: a key on 3 of 12,000 items, and one
    only on the very last item, keep all their values."""
    items = [export_kit.item(f"m{i:05d}") for i in range(12000)]
    for i in (5, 7000, 11998):
        items[i]["rare"] = f"r{i}"
    items[-1]["last_only"] = 7
    path = export_kit.write_json(tmp_path / "metadata.json", items)
    # chunks bigger than a sample's reach (4 windows of 256 KiB), several of them
    with open_export(path, cache_dir=tmp_path / "cache", chunk_bytes=1200 << 10) as ex:
        media = ex.media.collect()
        assert len(list((ex.cache_path / "media").glob("part-*"))) > 1  # several batches
    rare = media.filter(pl.col("rare").is_not_null())
    assert sorted(rare["rare"].to_list()) == ["r11998", "r5", "r7000"]
    assert media.filter(pl.col("last_only").is_not_null())["last_only"].to_list() == ["7"]


@pytest.mark.parametrize(
    "name", ['it\'s a "quoted" set', "semi;colon -- and 'quotes'", "new\nline", "$dollar {x}"]
)
def test_export_under_a_crafted_folder_name(
    name: str, tmp_path: Path, export_kit: Any, sample_json_copy: Path
) -> None:
    folder = tmp_path / name
    sample_json_copy.rename(folder)
    with open_export(folder) as ex:  # the default cache, inside the crafted folder too
        assert ex.counts["media"] == 46
        assert ex.sql("SELECT count(*) AS n FROM media")["n"].item() == 46
        assert ex.sql("SELECT count(image_path) AS n FROM media")["n"].item() == 46
        assert ex.cache_path.is_relative_to(folder)
    out = tmp_path / f"{name}.csv"
    result = CliRunner().invoke(main, ["sql", str(folder), "SELECT * FROM labels", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") == 287
    _no_pwn()


def test_info_block_keys_that_differ_in_case(tmp_path: Path, export_kit: Any) -> None:
    info = {**export_kit.info, "Owner": "a", "owner": "b", 'q"uote': "c"}
    path = export_kit.write_json(tmp_path / "metadata.json", [export_kit.item("m")], info=info)
    with open_export(path, cache_dir=tmp_path / "cache") as ex:
        row = ex.sql("SELECT * FROM info").to_dicts()[0]
        assert ex.info.block["Owner"] == "a" and ex.info.block["owner"] == "b"
    assert {"a", "b", "c"} <= set(row.values())


BAD: list[tuple[str, Callable[[Any], bytes], str]] = [
    ("deep-nesting-in-a-key", lambda kit: _nested(kit, 5000), r"nested|malformed"),
    ("deep-nesting-in-info", lambda kit: _nested_info(5000), r"nested|malformed"),
]


def _nested(kit: Any, depth: int) -> bytes:
    item = json.dumps(kit.item("m0"))[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    return ('{"info": {}, "media_items": [' + item + "]}").encode()


def _nested_info(depth: int) -> bytes:
    return ('{"info": ' + "[" * depth + "]" * depth + ', "media_items": []}').encode()


@pytest.mark.parametrize(("make", "pattern"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_hostile_shapes_fail_in_one_line_or_load(
    make: Callable[[Any], bytes], pattern: str, tmp_path: Path, export_kit: Any
) -> None:
    import re

    path = tmp_path / "metadata.json"
    path.write_bytes(make(export_kit))
    try:
        with open_export(path, cache_dir=tmp_path / "cache") as ex:
            assert ex.counts["media"] in (0, 1)
    except ExportFormatError as exc:
        assert re.search(pattern, str(exc)), exc
        assert "\n" not in str(exc)
    result = CliRunner().invoke(main, ["info", str(path), "--cache-dir", str(tmp_path / "c2")])
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        error_line(result)


def test_a_folder_holding_several_exports_is_refused(tmp_path: Path, export_kit: Any) -> None:
    for year in ("2024", "2025"):
        export_kit.write_json(tmp_path / "exports" / year / "metadata.json", [export_kit.item("m")])
    with pytest.raises(ExportFormatError, match="holds 2 exports") as err:
        open_export(tmp_path / "exports")
    assert "2024" in str(err.value) and "2025" in str(err.value)
    line = error_line(CliRunner().invoke(main, ["info", str(tmp_path / "exports")]))
    assert "2024, 2025" in line
    assert not (tmp_path / "exports" / ".vlanalyze-cache").exists()


def test_zip_fast_path_fallback_keeps_the_copied_metadata(tmp_path: Path, export_kit: Any) -> None:
    """A ZIP whose JSON makes the fast path fall back (an array-valued key after
    media_items) loads as the same folder does."""
    items = [export_kit.item(f"m{i}") for i in range(5)]
    text = json.dumps({"info": export_kit.info, "media_items": items, "later": [[1], {"a": 2}]})
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "metadata.json").write_text(text)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "metadata.json", "metadata.json")
    for path in (folder, archive):
        with open_export(path, cache_dir=tmp_path / f"cache-{path.suffix}") as ex:
            assert ex.counts["media"] == 5


def test_cache_files_follow_the_umask(tmp_path: Path, export_kit: Any) -> None:
    path = export_kit.write_json(tmp_path / "e" / "metadata.json", [export_kit.item("m")])
    old = os.umask(0o022)
    try:
        with open_export(path) as ex:
            folders = [ex.cache_path, ex.cache_path.parent, ex.cache_path.parent.parent]
            parts = list(ex.cache_path.rglob("*.parquet"))
    finally:
        os.umask(old)
    for folder in folders:
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    for part in parts:
        assert part.stat().st_mode & 0o777 == 0o644, part


def test_property_values_of_another_type_load_as_null_in_both_forms(
    tmp_path: Path, export_kit: Any
) -> None:
    """A property whose value is not of its column's type is NULL, the rest of the item
    and of the export load, and the JSON and Parquet forms agree."""
    label = {"category_name": "cat", "source": "User", "original_id": "not-a-number"}
    box = {"category_name": "dog", "bbox": "wide", "uniqueness_score": 0.5}
    items = [
        export_kit.item(
            "m0",
            metadata_items=[
                {"type": "image_label", "properties": label},
                {"type": "object_label", "properties": box},
                {"type": "issue", "properties": {"issue_type": "blur", "confidence": "high"}},
            ],
        ),
        export_kit.item("m1", metadata_items=[{"type": "caption", "properties": "plain text"}]),
    ]
    tables = []
    for form in ("json", "parquet"):
        folder = tmp_path / form
        if form == "json":
            path = export_kit.write_json(folder / "metadata.json", items)
        else:
            path = export_kit.write_parquet(folder / "metadata.parquet", items, items_as="json")
        with open_export(path, cache_dir=tmp_path / f"cache-{form}") as ex:
            got = {
                t: ex.sql(f"SELECT * EXCLUDE (media_id) FROM {t}").rows()
                for t in ("labels", "objects", "issues", "captions")
            }
        tables.append(got)
    json_form, parquet_form = tables
    assert json_form == parquet_form
    assert json_form["labels"] == [("cat", "User", None)]
    # object_id, category_name, source, original_id, bbox_x..bbox_h, uniqueness_score, url
    assert json_form["objects"] == [(None, "dog", None, None, None, None, None, None, 0.5, None)]
    assert json_form["issues"] == [(None, "blur", None, None, None)]
    assert json_form["captions"] == [(None, None)]
