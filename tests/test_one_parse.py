"""A JSON export is parsed once (issue #10): each chunk file starts with a sample item
from which DuckDB types the columns, and DuckDB refuses any key the sample lacks. These
tests pin both halves: the one-parse read is what normal exports get, and an export it
refuses (new keys, unknown item types) loads exactly as the two-parse read loads it,
with the sample item never reaching a table."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from vlanalyze import open_export
from vlanalyze.query import _schema as schema
from vlanalyze.query._jsonchunks import json_chunks
from vlanalyze.query._loaders import JsonLoader


def _items(export_kit: Any, n: int) -> list[dict[str, Any]]:
    label = {"type": "image_label", "properties": {"category_name": "cat", "source": "User"}}
    return [export_kit.item(f"m{i:05d}", metadata_items=[label]) for i in range(n)]


def _loader_modes(path: Path, work: Path, *, chunk_bytes: int) -> list[bool]:
    """Whether each chunk of ``path`` was read in one parse."""
    from vlanalyze.query._jsonchunks import ChunkSizes

    work.mkdir()
    sizes = ChunkSizes(chunk_bytes=chunk_bytes)
    chunks = json_chunks(path, work_dir=work, sizes=sizes, lead=schema.SAMPLE_ITEM)
    modes = []
    with closing(duckdb.connect()) as con:
        loader = JsonLoader(path, chunks)
        while (ticket := loader.take()) is not None:
            batch = loader.load(con, ticket)
            modes.append(loader.detect)
            con.execute(f"DROP TABLE {batch.table}")
            batch.cleanup()
    return modes


def test_the_sample_item_is_detected_as_the_canonical_types(tmp_path: Path) -> None:
    """Were DuckDB to type the sample otherwise, every export would take the slow read."""
    path = tmp_path / "sample.json"
    path.write_bytes(b"[" + schema.SAMPLE_ITEM + b"]")
    with closing(duckdb.connect()) as con:
        got = con.execute(
            "SELECT typeof(COLUMNS(*)) FROM read_json(?, format = 'array', records = true, "
            "sample_size = 1, map_inference_threshold = -1)",
            [str(path)],
        ).fetchall()[0]
    want = [*schema.KNOWN_MEDIA_KEYS.values(), schema.ITEMS_TYPE]
    assert [t.replace('"', "") for t in got] == [t.replace('"', "") for t in want]


def test_a_normal_export_is_read_in_one_parse(tmp_path: Path, export_kit: Any) -> None:
    path = export_kit.write_json(tmp_path / "metadata.json", _items(export_kit, 3000))
    modes = _loader_modes(path, tmp_path / "work", chunk_bytes=100_000)
    assert len(modes) > 3 and all(modes)


def test_a_new_key_midway_switches_to_the_exact_read_for_the_rest(
    tmp_path: Path, export_kit: Any
) -> None:
    items = _items(export_kit, 3000)
    items[1500]["new_key"] = "v"
    path = export_kit.write_json(tmp_path / "metadata.json", items)
    modes = _loader_modes(path, tmp_path / "work", chunk_bytes=100_000)
    assert modes[0] and not modes[-1]


@pytest.mark.parametrize("exact", [False, True], ids=["fast-cut", "exact-split"])
def test_refused_chunks_load_like_accepted_ones(
    exact: bool, tmp_path: Path, export_kit: Any
) -> None:
    """Unknown item types, unknown property keys and a new top-level key, past the first
    chunks: every item once, the sample item nowhere, other_metadata exact."""
    items = _items(export_kit, 2400)
    odd = {"type": "face_box", "properties": {"zzz": [1, 2], "x": "y"}}
    items[1000]["metadata_items"] = [odd]
    items[1200]["metadata_items"] = [
        {"type": "image_label", "properties": {"category_name": "dog", "brand_new": 1}}
    ]
    items[2000]["late_key"] = {"a": 1}
    top = {"media_items": items, "info": {"pad": "]" * 80}}  # 80 "]": no fast cut plan
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(top if exact else {"info": {}, "media_items": items}))
    with open_export(
        path, cache_dir=tmp_path / "cache", chunk_bytes=60_000, batch_bytes=60_000
    ) as ex:
        assert len(list((ex.cache_path / "media").glob("part-*"))) > 3
        media = ex.media.collect()
        labels = ex.labels.collect()
        other = ex.sql("SELECT media_id, type, properties FROM other_metadata")
    assert media["media_id"].to_list() == [f"m{i:05d}" for i in range(2400)]
    assert media.filter(pl.col("late_key").is_not_null())["media_id"].to_list() == ["m02000"]
    assert labels.height == 2399  # one label per item but m01000 (m01200: a dog)
    assert labels.filter(pl.col("category_name") == "dog").height == 1
    assert other.rows() == [("m01000", "face_box", json.dumps(odd["properties"], sort_keys=True))]


def test_unknown_keys_keep_the_file_order_on_two_workers(tmp_path: Path, export_kit: Any) -> None:
    """Two workers load chunks at once; keys first seen in later chunks still become
    columns in the order the file has them, every value in place, build after build."""
    items = _items(export_kit, 3000)
    firsts = {2800: "k_last", 700: "k_early", 1500: "k_mid", 2300: "K_MID"}
    for index, key in firsts.items():
        items[index][key] = f"v{index}"
    items[2900]["k_early"] = "again"
    path = export_kit.write_json(tmp_path / "metadata.json", items)
    want = ["k_early", "k_mid", "K_MID_2", "k_last"]  # the same name in another case: _2
    seen = []
    for build in range(3):
        progress: list[int] = []
        with open_export(
            path,
            cache_dir=tmp_path / f"cache{build}",
            chunk_bytes=40_000,
            on_progress=lambda done, _total, seen=progress: seen.append(done),
        ) as ex:
            assert len(list((ex.cache_path / "media").glob("part-*"))) > 8
            media = ex.media.collect()
        assert progress == sorted(progress) and progress[-1] <= path.stat().st_size
        extra = [c for c in media.columns if c.lower().startswith("k_")]
        seen.append(extra)
        assert media["media_id"].to_list() == [f"m{i:05d}" for i in range(3000)]
        values = media.filter(pl.col("k_early").is_not_null())["k_early"].to_list()
        assert values == ["v700", "again"]
        assert media.filter(pl.col("K_MID_2").is_not_null())["media_id"].to_list() == ["m02300"]
    assert seen == [want, want, want]


def test_a_failure_on_one_worker_stops_both(tmp_path: Path, export_kit: Any) -> None:
    """A progress callback that raises (a user's Ctrl-C) ends the build at once, not
    after the other worker has loaded the rest of the file."""
    path = export_kit.write_json(tmp_path / "metadata.json", _items(export_kit, 3000))
    calls: list[int] = []

    def stop(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        open_export(path, cache_dir=tmp_path / "cache", chunk_bytes=20_000, on_progress=stop)
    chunks = path.stat().st_size // 20_000
    assert chunks > 15 and 1 <= len(calls) <= 2  # the other worker's batch in flight


@pytest.mark.slow
def test_a_parquet_export_of_several_batches_loads_like_its_json(
    tmp_path: Path, export_kit: Any
) -> None:
    """Past 20,000 rows a Parquet export is read in several batches, by both workers at
    once: its tables are the JSON form's, row for row."""
    items = _items(export_kit, 41_000)
    for i, item in enumerate(items):
        item["late_col"] = f"v{i}" if i >= 40_500 else None
        if i % 10_000 == 7:
            item["metadata_items"] = [{"type": "face_box", "properties": {"n": i}}]
    forms = {
        "json": export_kit.write_json(tmp_path / "j" / "metadata.json", items),
        "parquet": export_kit.write_parquet(
            tmp_path / "p" / "metadata.parquet", items, items_as="json"
        ),
    }
    tables = {}
    for form, path in forms.items():
        with open_export(path, cache_dir=tmp_path / f"cache-{form}") as ex:
            if form == "parquet":
                assert len(list((ex.cache_path / "media").glob("part-*"))) == 3
            tables[form] = {  # SQL without ORDER BY has no order: sorted, then compared
                t: ex.sql(f"SELECT * FROM {t} ORDER BY ALL")
                for t in ("media", "labels", "issues", "other_metadata")
            }
            assert ex.media.collect()["media_id"].to_list() == [
                f"m{i:05d}" for i in range(41_000)
            ]  # the table itself is in the file's order
    for name, frame in tables["json"].items():
        assert frame.equals(tables["parquet"][name]), name
    media = tables["json"]["media"]
    assert media["late_col"].drop_nulls().len() == 500
    assert tables["json"]["other_metadata"]["media_id"].to_list() == [
        f"m{i:05d}" for i in (7, 10_007, 20_007, 30_007, 40_007)
    ]
