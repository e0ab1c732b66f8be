"""The Parquet cache: where it goes, when it is reused or rebuilt, and that a path that
is not ours, or a failed build, never becomes a trusted cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import read_only

from vlanalyze import CacheError, open_export
from vlanalyze.query._sql import quote_literal


def _manifests(root: Path) -> list[Path]:
    return list(root.rglob("manifest.json"))


# --- the cache ---------------------------------------------------------------------------


def test_default_cache_locations(
    hand_json: Path, tmp_path: Path, export_kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyed on the resolved file (#11): one export, one cache, however it is named."""
    monkeypatch.delenv("VLANALYZE_CACHE_DIR", raising=False)
    folder = hand_json.parent
    with open_export(folder) as ex:
        built = ex.cache_path
        assert built.is_relative_to(folder / ".vlanalyze-cache")
    (tmp_path / "link").symlink_to(folder)
    monkeypatch.chdir(tmp_path / "link")
    for same in (hand_json, "metadata.json", "../export/metadata.json", tmp_path / "link"):
        with open_export(same) as ex:
            assert ex.cache_path == built, same
    assert len(_manifests(tmp_path)) == 1
    assert not list(tmp_path.rglob(".building-*"))


def test_cache_is_reused(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.counts["media"] == 5
        built = ex.cache_path
    before = (built.stat().st_ino, (built / "manifest.json").stat().st_mtime_ns)

    def no_rebuild(done: int, total: int | None) -> None:
        raise AssertionError("the cache was rebuilt")  # a build always reports progress

    with open_export(hand_json, cache_dir=cache, on_progress=no_rebuild) as ex:
        assert ex.counts["media"] == 5
        assert ex.sql("SELECT count(*) AS n FROM media")["n"].item() == 5
        assert ex.cache_path == built
    assert (built.stat().st_ino, (built / "manifest.json").stat().st_mtime_ns) == before


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "export"]
    assert len(_manifests(cache)) == 1  # no stale copy


def test_a_rewrite_that_restores_size_and_mtime_is_seen(
    hand_json: Path, tmp_path: Path, export_kit: Any
) -> None:
    """The fingerprint has the ctime and inode: a same-size rewrite with its mtime put
    back, or a file replaced by another, is not served from the stale cache."""
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.media.collect()["media_id"].to_list()[0] == "m0"
    st = hand_json.stat()
    text = hand_json.read_text().replace('"m0"', '"z0"')
    hand_json.write_text(text)
    os.utime(hand_json, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (hand_json.stat().st_size, hand_json.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.media.collect()["media_id"].to_list()[0] == "z0"


def test_sql_writing_over_the_cache_is_detected(hand_json: Path, tmp_path: Path) -> None:
    """COPY ... TO '<cache>/media/part-00000.parquet' corrupts the cache: the next open
    sees the part is not the one it wrote, and rebuilds."""
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        part = next((ex.cache_path / "media").glob("part-*.parquet"))
        ex.sql(f"COPY (SELECT * FROM media LIMIT 1) TO {quote_literal(str(part))} (FORMAT parquet)")
        extra = quote_literal(str(part.with_name("part-99999.parquet")))
        ex.sql(f"COPY (SELECT * FROM media) TO {extra}")
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.sql("SELECT count(*) AS n FROM media")["n"].item() == 5
        assert ex.counts["media"] == 5


def test_refresh_rebuilds(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        old = ex.cache_path
    calls: list[tuple[int, int]] = []
    with open_export(
        hand_json, cache_dir=cache, refresh=True, on_progress=lambda d, t: calls.append((d, t))
    ) as ex:
        assert ex.counts["media"] == 5
        assert ex.cache_path != old
    assert not old.exists()  # released, so removed by the rebuild
    assert calls and calls[-1][0] <= calls[-1][1]
    assert not list(tmp_path.rglob(".building-*")) and len(_manifests(cache)) == 1


def test_cache_dir_argument(hand_json: Path, tmp_path: Path, export_kit: Any) -> None:
    """cache_dir is a root, as VLANALYZE_CACHE_DIR is (#11): one entry per export, so two
    exports sharing it never rebuild each other's cache."""
    cache = tmp_path / "elsewhere" / "deep" / "cache"
    other = export_kit.write_json(tmp_path / "other" / "metadata.json", [export_kit.item("o")])
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.cache_path.parent.parent == cache  # <cache>/<export>-<key>/<build>
        first = ex.cache_path
    with open_export(other, cache_dir=cache) as ex:
        assert ex.cache_path.parent != first.parent
    with open_export(hand_json, cache_dir=cache, on_progress=_no_build) as ex:
        assert ex.cache_path == first
    assert len(_manifests(cache)) == 2
    assert sorted(p.name for p in hand_json.parent.iterdir()) == ["metadata.json"]


def _no_build(done: int, total: int | None) -> None:
    raise AssertionError("rebuilt")


def test_cache_dir_from_environment(
    hand_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "env-cache"
    monkeypatch.setenv("VLANALYZE_CACHE_DIR", str(base))
    with open_export(hand_json) as ex:
        assert ex.cache_path.parent.parent == base
        assert ex.cache_path.parent.name.startswith("metadata.json-")
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
    with open_export(hand_json, cache_dir=cache) as ex:  # a root holds other things too
        entry = ex.cache_path.parent
    assert (cache / "notes.txt").read_text() == "precious"
    shutil.rmtree(entry)
    entry.mkdir()
    (entry / "notes.txt").write_text("precious")  # the export's own folder is not ours
    with pytest.raises(CacheError, match="not a vlanalyze cache") as err:
        open_export(hand_json, cache_dir=cache)
    assert err.value.hint is not None
    assert sorted(p.name for p in entry.iterdir()) == ["notes.txt"]


def test_cache_path_that_is_a_file_is_a_cache_error(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "a-file"
    cache.write_text("precious")
    with pytest.raises(CacheError):
        open_export(hand_json, cache_dir=cache)
    assert cache.read_text() == "precious"


def test_damaged_manifest_is_rebuilt(hand_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        (ex.cache_path / "manifest.json").write_text("{not json")
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.counts["media"] == 5
        json.loads((ex.cache_path / "manifest.json").read_text())


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_failed_build_leaves_no_trusted_cache(
    hand_json: Path, tmp_path: Path, interrupt: type[BaseException]
) -> None:
    def boom(done: int, total: int | None) -> None:
        raise interrupt("interrupted")  # mid-build, after a batch was written

    with pytest.raises(interrupt):
        open_export(hand_json, cache_dir=tmp_path / "cache", on_progress=boom)
    assert not _manifests(tmp_path)
    assert not list(tmp_path.rglob(".building-*"))


def test_the_summary_is_kept_with_the_cache(
    hand_json: Path, tmp_path: Path, export_kit: Any
) -> None:
    """info's summary is computed with each cache build, then read back (#11)."""
    from vlanalyze import summarize

    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        # Stored by the build itself, before any summary was asked for.
        assert len(list(ex.cache_path.glob("stored-summary-*.json"))) == 1
        first = summarize(ex).to_dict()
    with open_export(hand_json, cache_dir=cache) as ex:
        assert summarize(ex).to_dict() == first
    export_kit.write_json(hand_json, [export_kit.item("n0")])
    with open_export(hand_json, cache_dir=cache) as ex:  # a new build: a new summary
        assert summarize(ex).export.counts["media"] == 1
        assert summarize(ex).to_dict() != first


def test_stored_values_are_computed_once_per_build(hand_json: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    cache = tmp_path / "cache"
    with open_export(hand_json, cache_dir=cache) as ex:
        assert ex.stored("my-count", compute) == {"n": 1}
    with open_export(hand_json, cache_dir=cache) as ex:  # another opening, same build
        assert ex.stored("my-count", compute) == {"n": 1}
        with pytest.raises(ValueError, match="lowercase"):
            ex.stored("../escape", compute)
    with open_export(hand_json, cache_dir=cache, refresh=True) as ex:  # a new build
        assert ex.stored("my-count", compute) == {"n": 2}
    assert not list(tmp_path.rglob("*escape*"))
