"""Processes that meet on one cache (issue #12): several opening a new export at once
never crash nor see a cache being moved; an Export that outlives a rebuild keeps its own
consistent snapshot; leftovers of killed runs are removed, never a live one's."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlanalyze import open_export

WORKERS = 4
ROUNDS = 20


def _items(n: int, tag: str) -> list[dict[str, object]]:
    return [
        {
            "media_id": f"{tag}-{i}",
            "file_name": f"{i}.jpg",
            "file_path": f"d/{i}.jpg",
            "metadata_items": [{"type": "image_label", "properties": {"category_name": "c"}}],
        }
        for i in range(n)
    ]


def _write(path: Path, n: int, tag: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"info": {}, "media_items": _items(n, tag)}))
    os.replace(tmp, path)


def _open_and_count(args: tuple[str, str, bool]) -> tuple[int, int, int]:
    """In a worker process: open, count by SQL and by polars. Any exception fails the test."""
    path, cache, refresh = args
    with open_export(path, cache_dir=cache, refresh=refresh) as ex:
        by_sql = int(ex.sql("SELECT count(*) AS n FROM media")["n"].item())
        labels = int(ex.sql("SELECT count(*) AS n FROM labels")["n"].item())
        return ex.counts["media"], by_sql, labels + 0 * ex.media.collect().height


@pytest.mark.slow
def test_processes_opening_one_new_export_at_once(tmp_path: Path) -> None:
    path = tmp_path / "export" / "metadata.json"
    path.parent.mkdir()
    cache = str(tmp_path / "cache")
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with ctx.Pool(WORKERS) as pool:
        for round_ in range(ROUNDS):
            n = 2000 + 37 * round_
            _write(path, n, f"r{round_}")
            refresh = [round_ % 2 == 1 and w < 2 for w in range(WORKERS)]  # rebuilds meet
            results = pool.map(_open_and_count, [(str(path), cache, r) for r in refresh])
            assert results == [(n, n, n)] * WORKERS, round_
    assert time.monotonic() - started < 120
    left = [p.name for p in (tmp_path / "cache").rglob("*") if ".building-" in p.name]
    assert not left
    builds = list((tmp_path / "cache").rglob("manifest.json"))
    assert len(builds) == 1  # every old build was removed once no one read it


def test_an_export_outlives_a_rebuild_with_its_own_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "metadata.json"
    _write(path, 20, "old")
    cache = tmp_path / "cache"
    with open_export(path, cache_dir=cache) as old:
        assert old.sql("SELECT count(*) AS n FROM media")["n"].item() == 20
        _write(path, 300, "new")
        with open_export(path, cache_dir=cache) as new:
            assert new.counts["media"] == 300
            assert new.cache_path != old.cache_path
        # another rebuild while `old` is still open
        with open_export(path, cache_dir=cache, refresh=True) as newer:
            assert newer.counts["media"] == 300
        # the old Export still reads its own, whole snapshot: never a mix
        fresh = old.duckdb()
        try:
            rows = fresh.sql("SELECT count(*), min(media_id) FROM media").fetchall()
        finally:
            fresh.close()
        assert rows == [(20, "old-0")]
        assert old.media.collect().height == 20
        assert old.sql("SELECT count(*) AS n FROM labels")["n"].item() == 20
    with open_export(path, cache_dir=cache) as again:
        assert again.counts["media"] == 300
    assert len(list(cache.rglob("manifest.json"))) == 1  # released snapshots are removed


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_the_next_run_keeps(tmp_path: Path) -> None:
    """kill -9 in the middle of a build: the next run removes the half-built folder."""
    path = tmp_path / "metadata.json"
    _write(path, 60_000, "big")
    cache = tmp_path / "cache"
    code = (
        "import sys, vlanalyze as v\n"
        "def p(d, t):\n"
        "    print('progress', flush=True)\n"
        "v.open_export(sys.argv[1], cache_dir=sys.argv[2], on_progress=p)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(cache)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()  # building
        if proc.poll() is not None:
            pytest.skip("the build finished before it could be killed")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(cache.rglob(".building-*")), "nothing to clean: the test proves nothing"
    with open_export(path, cache_dir=cache) as ex:
        assert ex.counts["media"] == 60_000
    assert not list(cache.rglob(".building-*"))


@pytest.mark.slow
def test_a_live_readers_build_is_not_removed(tmp_path: Path) -> None:
    """Another process's open Export keeps its build through our rebuild."""
    path = tmp_path / "metadata.json"
    _write(path, 10, "a")
    cache = tmp_path / "cache"
    code = (
        "import sys, time, vlanalyze as v\n"
        "ex = v.open_export(sys.argv[1], cache_dir=sys.argv[2])\n"
        "print(ex.cache_path, flush=True)\n"
        "sys.stdin.readline()\n"
        "print(ex.sql('SELECT count(*) AS n FROM media')['n'].item(), flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        theirs = Path(proc.stdout.readline().strip())
        _write(path, 11, "b")
        with open_export(path, cache_dir=cache, refresh=True) as ex:
            assert ex.counts["media"] == 11
        assert theirs.is_dir()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "10"
        assert proc.wait(30) == 0
    with open_export(path, cache_dir=cache) as ex:  # theirs is released: now removed
        assert ex.counts["media"] == 11
    assert not theirs.exists()


def test_the_last_reader_of_an_old_build_removes_it(tmp_path: Path) -> None:
    """No later open is needed: closing the last Export of an old build removes it."""
    path = tmp_path / "metadata.json"
    cache = tmp_path / "cache"
    _write(path, 20, "old")
    old = open_export(path, cache_dir=cache)
    _write(path, 30, "new")
    with open_export(path, cache_dir=cache) as new:
        assert new.counts["media"] == 30
    assert len(list(cache.rglob("manifest.json"))) == 2  # the old one is still read
    old.close()
    assert len(list(cache.rglob("manifest.json"))) == 1
    with open_export(path, cache_dir=cache) as again:  # the current build is untouched
        assert again.counts["media"] == 30
