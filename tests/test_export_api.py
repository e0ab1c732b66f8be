"""The typed results (Export.info, summarize) and a LazyFrame for every table."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import vlanalyze as vla
from vlanalyze import QueryError, open_export
from vlanalyze.query._schema import TABLES


@pytest.fixture(scope="module")
def export(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[vla.Export]:
    cache = tmp_path_factory.mktemp("c") / "cache"
    with vla.open_export(sample_export / "metadata.json", cache_dir=cache) as ex:
        yield ex


def test_info_is_typed_and_frozen(export: vla.Export) -> None:
    info = export.info
    assert isinstance(info, vla.ExportInfo)
    assert info.dataset == "vlanalyze sample" and info.format == "json"
    assert info.total_media_items == info.counts["media"] == 46
    assert dataclasses.asdict(info.images) == {
        "files": 46,
        "found": 46,
        "missing": 0,
        "ambiguous": 0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.format = "parquet"  # type: ignore[misc]
    data = info.to_dict()
    assert data["dataset"] == info.block["dataset"] and data["counts"] == info.counts
    assert json.loads(json.dumps(data)) == data


def test_summary_is_typed_and_its_dict_is_json(export: vla.Export) -> None:
    summary = vla.summarize(export, top=2)
    assert isinstance(summary, vla.Summary) and summary.export == export.info
    assert [row.category_name for row in summary.top_labels] == [
        d["category_name"] for d in summary.to_dict()["top_labels"]
    ]
    assert len(summary.top_labels) == 2
    duplicates = next(r for r in summary.issue_types if r.issue_type == "duplicates")
    assert (duplicates.image_rows, duplicates.object_rows) == (122, 323)
    assert pl.DataFrame(summary.issue_types).columns == [
        "issue_type",
        "image_rows",
        "object_rows",
        "media",
    ]
    text = json.dumps(summary.to_dict(), default=str)
    assert json.loads(text)["counts"] == export.counts


def test_every_table_is_a_lazyframe(export: vla.Export) -> None:
    assert set(export.tables) == set(export.counts)
    for name in export.tables:
        frame = export.table(name)
        assert isinstance(frame, pl.LazyFrame), name
        assert frame.collect().height == export.counts[name], name
        if name != "info":  # Export.info is the typed block; its table is table("info")
            attribute = getattr(export, name)
            assert isinstance(attribute, pl.LazyFrame), name
            assert attribute.collect().height == export.counts[name], name


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
