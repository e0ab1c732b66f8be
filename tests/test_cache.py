"""The Parquet cache: where it goes, when it is reused or rebuilt, and that a path that
is not ours, or a failed build, never becomes a trusted cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import read_only

from vlanalyze import CacheError, open_export


def _manifests(root: Path) -> list[Path]:
    return list(root.rglob("manifest.json"))


# --- the cache ---------------------------------------------------------------------------


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
