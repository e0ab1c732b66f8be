"""Faults of the machine, not of the data (issue #12): a full disk and Ctrl-C get one line
that says what happened, exit 1 (130 for Ctrl-C), and leave nothing a later run trusts.

The full-disk tests need a small filesystem: a tmpfs mounted for the test (root on
Linux); elsewhere they skip, saying so.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import error_line, tmpfs

from vlanalyze import CacheError, VLAnalyzeError, open_export
from vlanalyze.cli import main


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem (tmpfs), unmounted after the test."""
    with tmpfs(tmp_path / "small-disk", "1m") as mount:
        yield mount


def _big_export(path: Path, kit: Any, n: int = 6000) -> Path:
    """About 3 MB of JSON whose tables do not compress below 1 MB either."""
    labels = [{"type": "image_label", "properties": {"category_name": f"c{i}"}} for i in range(4)]
    items = [
        kit.item(f"m{i:06d}", metadata_items=labels, note=secrets.token_hex(100)) for i in range(n)
    ]
    return kit.write_json(path, items)


def _no_space(line: str) -> None:
    assert "no space left on device" in line, line
    assert "free disk space" in line, line


def test_disk_full_while_building_the_cache(
    small_disk: Path, tmp_path: Path, export_kit: Any
) -> None:
    path = _big_export(tmp_path / "export" / "metadata.json", export_kit)
    with pytest.raises(CacheError) as err:
        open_export(path, cache_dir=small_disk / "cache")
    _no_space(str(err.value))
    assert "cache_dir" in str(err.value)  # where else the cache could go
    line = error_line(
        CliRunner().invoke(main, ["info", str(path), "--cache-dir", str(small_disk / "cache")])
    )
    _no_space(line)
    assert not list(small_disk.rglob("manifest.json"))
    assert not list(small_disk.rglob(".building-*"))


def test_disk_full_while_copying_metadata_out_of_a_zip(
    small_disk: Path, tmp_path: Path, export_kit: Any
) -> None:
    """Not "the archive is damaged": the archive is fine, the disk is full."""
    path = _big_export(tmp_path / "export" / "metadata.json", export_kit)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "metadata.json")
    assert archive.stat().st_size < (1 << 20) < path.stat().st_size
    args = ["info", str(archive), "--cache-dir", str(small_disk / "cache")]
    line = error_line(CliRunner().invoke(main, args))
    _no_space(line)
    assert "damaged" not in line


def test_disk_full_in_sql_output(small_disk: Path, tmp_path: Path, export_kit: Any) -> None:
    path = _big_export(tmp_path / "export" / "metadata.json", export_kit)
    out = small_disk / "media.csv"
    args = ["sql", str(path), "SELECT * FROM media", "-o", str(out)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    line = error_line(CliRunner().invoke(main, args))
    assert "no space left on device" in line.lower(), line
    assert not out.exists()
    assert not list(small_disk.iterdir()), "a partial file was left"


def test_disk_full_in_convert(small_disk: Path, tmp_path: Path, export_kit: Any) -> None:
    path = _big_export(tmp_path / "export" / "metadata.json", export_kit)
    out = small_disk / "tables"
    args = ["convert", str(path), "-o", str(out), "--cache-dir", str(tmp_path / "cache")]
    line = error_line(CliRunner().invoke(main, args))
    assert "no space left on device" in line.lower(), line
    assert not [p for p in small_disk.rglob("*") if p.is_file()], "a partial file was left"


@pytest.mark.slow
def test_ctrl_c_while_building_the_cache(tmp_path: Path, export_kit: Any) -> None:
    """SIGINT during a build: "Interrupted.", exit 130, no traceback, no build folder."""
    items = [export_kit.item(f"m{i:06d}", note="y" * 100) for i in range(60_000)]
    path = export_kit.write_json(tmp_path / "metadata.json", items)
    cache = tmp_path / "cache"
    with subprocess.Popen(
        [sys.executable, "-m", "vlanalyze", "info", str(path), "--cache-dir", str(cache)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 60
        while not list(cache.rglob(".building-*/media/part-*")):
            assert time.monotonic() < deadline and proc.poll() is None, "no build seen"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "Interrupted."
    time.sleep(0.1)
    assert not list(cache.rglob(".building-*"))
    assert not list(cache.rglob("manifest.json"))


def test_info_of_a_nested_5000_deep_item_is_one_line_or_loads(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    text = '{"info": {}, "media_items": [{"media_id": "a", "deep": ' + deep + "}]}"
    (tmp_path / "metadata.json").write_text(text)
    args = ["info", str(tmp_path / "metadata.json"), "--json"]
    result = CliRunner().invoke(main, [*args, "--cache-dir", str(tmp_path / "c")])
    if result.exit_code == 0:
        assert json.loads(result.stdout)["counts"]["media"] == 1
    else:
        assert "nested" in error_line(result) or "malformed" in error_line(result)


def test_only_a_cache_file_is_called_a_cache_error(tmp_path: Path, export_kit: Any) -> None:
    """An IO error on the user's own file is a QueryError naming it; one on a cache file
    (removed under an open Export) is a CacheError that says to rebuild."""
    from vlanalyze import QueryError

    path = export_kit.write_json(tmp_path / "metadata.json", [export_kit.item("m")])
    with open_export(path, cache_dir=tmp_path / "cache") as ex:
        with pytest.raises(QueryError) as err:
            ex.sql("SELECT * FROM read_csv($p)", {"p": str(tmp_path / "nope.csv")})
        assert "nope.csv" in str(err.value) and "refresh" not in str(err.value)
        assert not isinstance(err.value, CacheError)
        for part in (ex.cache_path / "labels").glob("part-*"):
            part.unlink()
        with pytest.raises(CacheError, match="refresh"):
            ex.sql("SELECT * FROM labels")


def test_disk_full_in_a_users_copy(small_disk: Path, tmp_path: Path, export_kit: Any) -> None:
    path = _big_export(tmp_path / "export" / "metadata.json", export_kit)
    with (
        open_export(path, cache_dir=tmp_path / "cache") as ex,
        pytest.raises(VLAnalyzeError) as err,
    ):
        ex.sql("COPY (SELECT * FROM media) TO $p", {"p": str(small_disk / "all.csv")})
    _no_space(str(err.value))
