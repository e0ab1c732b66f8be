"""Bad input to open_export and the query CLI (issue #2): each is one clear error naming
the file and what is wrong, exit 1 with one ``Error:`` line, and no cache left behind
that a later run would trust."""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import error_line

from vlanalyze import ArchiveError, CacheError, ExportFormatError, VLAnalyzeError, open_export
from vlanalyze.cli import main


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default cache locations only: beside the input, or under tmp_path."""
    monkeypatch.delenv("VLANALYZE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _error_line(result: Result) -> str:
    line = error_line(result)
    assert result.stdout == ""
    return line


def _assert_nothing_trusted(root: Path) -> None:
    assert not list(root.rglob("manifest.json")), "a cache was left behind"
    assert not list(root.rglob("*.vla-tmp-*")), "a build folder was left behind"


def _good_json(kit: Any, n: int = 50) -> str:
    return json.dumps({"info": kit.info, "media_items": [kit.item(f"m{i:03d}") for i in range(n)]})


def _sample_zip(kit: Any, sample: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.write(sample / "metadata.json", "metadata.json")
        for image in sorted((sample / "images").rglob("*.jpg"))[:3]:
            zf.write(image, image.relative_to(sample).as_posix())
    return path


# --- the cases: (name, builder(tmp folder, kit, sample) -> path, error class, message regex)

Builder = Callable[[Path, Any, Path], Path]


def _corrupt_zip(d: Path, kit: Any, sample: Path) -> Path:
    data = _sample_zip(kit, sample, d / "whole.zip").read_bytes()
    (d / "whole.zip").unlink()
    (d / "export.zip").write_bytes(data[: len(data) // 2])  # an interrupted download
    return d / "export.zip"


def _garbage_zip(d: Path, kit: Any, sample: Path) -> Path:
    (d / "export.zip").write_bytes(b"PK\x03\x04" + b"\x00garbage" * 50)
    return d / "export.zip"


def _zip_without_metadata(d: Path, kit: Any, sample: Path) -> Path:
    with zipfile.ZipFile(d / "export.zip", "w") as zf:
        zf.writestr("images/a.jpg", b"\xff\xd8")
        zf.writestr("readme.txt", "hello")
    return d / "export.zip"


def _zip_with_damaged_member(d: Path, kit: Any, sample: Path) -> Path:
    path = _sample_zip(kit, sample, d / "export.zip")
    data = bytearray(path.read_bytes())
    at = data.index(b'"media_items"')  # inside the stored metadata.json member
    data[at : at + 13] = b"X" * 13  # the CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def _truncated_json(d: Path, kit: Any, sample: Path) -> Path:
    text = _good_json(kit)
    (d / "metadata.json").write_text(text[: len(text) // 2])
    return d / "metadata.json"


def _truncated_in_info(d: Path, kit: Any, sample: Path) -> Path:
    (d / "metadata.json").write_text(_good_json(kit)[:60])
    return d / "metadata.json"


def _parquet_without_media_id(d: Path, kit: Any, sample: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"image_filename": ["a.jpg"], "uniqueness_score": [0.5]}), d / "m.parquet"
    )
    return d / "m.parquet"


def _not_parquet(d: Path, kit: Any, sample: Path) -> Path:
    (d / "metadata.parquet").write_bytes(b"PAR1 but then nothing useful")
    return d / "metadata.parquet"


def _write(name: str, data: bytes) -> Builder:
    def build(d: Path, kit: Any, sample: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return build


def _garbage_after_the_object(d: Path, kit: Any, sample: Path) -> Path:
    (d / "metadata.json").write_text(_good_json(kit) + ' {"more": 1}')
    return d / "metadata.json"


CASES: list[tuple[str, Builder, type[VLAnalyzeError], str]] = [
    ("corrupt-zip", _corrupt_zip, ArchiveError, r"not a readable ZIP"),
    ("garbage-zip", _garbage_zip, ArchiveError, r"not a readable ZIP"),
    ("zip-without-metadata", _zip_without_metadata, ArchiveError, r"no metadata\.json"),
    ("zip-damaged-member", _zip_with_damaged_member, ArchiveError, r"metadata\.json"),
    ("truncated-json", _truncated_json, ExportFormatError, r"byte \d+"),
    ("truncated-in-info", _truncated_in_info, ExportFormatError, r"byte \d+"),
    ("parquet-without-media_id", _parquet_without_media_id, ExportFormatError, r"media_id"),
    ("not-parquet", _not_parquet, ExportFormatError, r"Parquet"),
    ("not-an-export", _write("metadata.json", b'{"foo": 1}'), ExportFormatError, r"media_items"),
    ("csv", _write("metadata.json", b"media_id,width\na,1\n"), ExportFormatError, r"not a"),
    ("csv-by-name", _write("items.csv", b"media_id,width\na,1\n"), ExportFormatError, r"not a"),
    (
        "png-renamed",
        _write("metadata.json", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ExportFormatError,
        r"not a",
    ),
    ("empty-file", _write("metadata.json", b""), ExportFormatError, r"empty"),
    ("whitespace-only", _write("metadata.json", b" \n\t\n"), ExportFormatError, r"byte 0"),
    ("top-level-array", _write("metadata.json", b"[1, 2]"), ExportFormatError, r"not a"),
    (
        "media_items-not-an-array",
        _write("metadata.json", b'{"info": {}, "media_items": {"a": 1}}'),
        ExportFormatError,
        r"media_items",
    ),
    (
        "media_items-of-arrays",
        _write("metadata.json", b'{"info": {}, "media_items": [[1], [2]]}'),
        ExportFormatError,
        r"not an object",
    ),
    ("garbage-after-the-object", _garbage_after_the_object, ExportFormatError, r"malformed"),
]


@pytest.mark.parametrize(
    ("builder", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_library(
    builder: Builder,
    error: type[VLAnalyzeError],
    pattern: str,
    tmp_path: Path,
    export_kit: Any,
    sample_export: Path,
) -> None:
    (tmp_path / "in").mkdir()
    path = builder(tmp_path / "in", export_kit, sample_export)
    with pytest.raises(error) as err:
        open_export(path)
    message = str(err.value)
    assert str(path) in message  # names the file
    assert re.search(pattern, message), message
    assert "\n" not in message
    _assert_nothing_trusted(tmp_path)


@pytest.mark.parametrize(
    ("builder", "pattern"), [(c[1], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_cli(
    builder: Builder, pattern: str, tmp_path: Path, export_kit: Any, sample_export: Path
) -> None:
    (tmp_path / "in").mkdir()
    path = builder(tmp_path / "in", export_kit, sample_export)
    for args in (["info", str(path)], ["sql", str(path), "SELECT 1"]):
        line = _error_line(CliRunner().invoke(main, args))
        assert str(path) in line
        assert re.search(pattern, line), line
    _assert_nothing_trusted(tmp_path)


def test_truncated_json_reports_the_end_offset(tmp_path: Path, export_kit: Any) -> None:
    text = _good_json(export_kit)
    cut = len(text) // 2
    (tmp_path / "metadata.json").write_text(text[:cut])
    with pytest.raises(ExportFormatError) as err:
        open_export(tmp_path / "metadata.json")
    offset = int(re.search(r"byte (\d+)", str(err.value)).group(1))  # type: ignore[union-attr]
    assert cut - 4096 <= offset <= cut


def _malformed(kit: Any, path: Path, n: int, bad_item: int) -> int:
    """Write an export whose item ``bad_item`` lacks a comma; return that byte offset."""
    text = _good_json(kit, n)
    marker = f'"media_id": "m{bad_item:03d}", '
    at = text.index(marker) + len(marker) - 2
    path.write_text(text[:at] + " @" + text[at + 1 :])
    return at


@pytest.mark.parametrize(
    ("n", "bad_item", "sizes"),
    [
        pytest.param(200, 150, (2000, 256, 1000), id="small-chunks"),
        pytest.param(6000, 5500, None, id="default-sizes-far-item"),
    ],
)
def test_malformed_item_reports_its_byte_offset(
    n: int,
    bad_item: int,
    sizes: tuple[int, int, int] | None,
    tmp_path: Path,
    export_kit: Any,
) -> None:
    path = tmp_path / "metadata.json"
    at = _malformed(export_kit, path, n, bad_item)
    tuning = {}
    if sizes is not None:
        tuning = dict(zip(("chunk_bytes", "head_bytes", "batch_bytes"), sizes, strict=True))
    with pytest.raises(ExportFormatError) as err:
        open_export(path, **tuning)
    line = str(err.value)
    assert str(path) in line and "\n" not in line
    offset = int(re.search(r"at byte (\d+)", line).group(1))  # type: ignore[union-attr]
    assert abs(offset - at) < 200, (offset, at)
    _assert_nothing_trusted(tmp_path)


def test_malformed_item_in_a_small_file(tmp_path: Path, export_kit: Any) -> None:
    path = tmp_path / "metadata.json"
    at = _malformed(export_kit, path, 50, 30)
    line = _error_line(CliRunner().invoke(main, ["info", str(path)]))
    offset = int(re.search(r"at byte (\d+)", line).group(1))  # type: ignore[union-attr]
    assert abs(offset - at) < 200
    _assert_nothing_trusted(tmp_path)


@pytest.mark.parametrize("items", [b"[1, 2]", b'["a", "b"]'], ids=["numbers", "strings"])
def test_media_items_of_scalars(items: bytes, tmp_path: Path) -> None:
    path = tmp_path / "metadata.json"
    path.write_bytes(b'{"info": {}, "media_items": ' + items + b"}")
    _error_line(CliRunner().invoke(main, ["info", str(path)]))
    _assert_nothing_trusted(tmp_path)


def test_parquet_metadata_items_not_json(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "metadata.parquet"
    pq.write_table(pa.table({"media_id": ["a"], "metadata_items": ["not json"]}), path)
    line = _error_line(CliRunner().invoke(main, ["info", str(path)]))
    assert str(path) in line
    _assert_nothing_trusted(tmp_path)


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["info", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


# --- unreadable caches -------------------------------------------------------------------


@pytest.fixture
def built(tmp_path: Path, export_kit: Any) -> tuple[Path, Path, Path]:
    """The export, its cache root, and the cache build it got."""
    path = tmp_path / "metadata.json"
    path.write_text(_good_json(export_kit, 5))
    cache = tmp_path / "cache"
    with open_export(path, cache_dir=cache) as ex:
        build = ex.cache_path
    return path, cache, build


def test_unreadable_cache_manifest(built: tuple[Path, Path, Path]) -> None:
    path, cache, build = built
    manifest = build / "manifest.json"
    manifest.chmod(0)
    try:
        if os.access(manifest, os.R_OK):
            pytest.skip("running as root: chmod cannot make the cache unreadable")
        with pytest.raises(CacheError, match="manifest"):
            open_export(path, cache_dir=cache)
        result = CliRunner().invoke(main, ["info", str(path), "--cache-dir", str(cache)])
        assert str(manifest) in _error_line(result)
    finally:
        manifest.chmod(0o644)


def test_cache_table_folder_emptied(built: tuple[Path, Path, Path]) -> None:
    """A part removed behind the cache's back is seen at open: the cache is rebuilt."""
    path, cache, build = built
    for part in (build / "media").iterdir():
        part.unlink()
    args = ["sql", str(path), "SELECT count(*) AS n FROM media", "--cache-dir", str(cache)]
    result = CliRunner().invoke(main, [*args, "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", "5"]
    assert not build.exists()  # the damaged build was removed


def test_damaged_cache_part(built: tuple[Path, Path, Path]) -> None:
    path, cache, build = built
    part = next((build / "media").glob("part-*.parquet"))
    part.write_bytes(b"not parquet at all")
    args = ["sql", str(path), "SELECT count(*) AS n FROM media", "--cache-dir", str(cache)]
    result = CliRunner().invoke(main, [*args, "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", "5"]
