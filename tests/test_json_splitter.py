"""The JSON reader's two paths (cut into chunks, or split item by item) on every layout
and chunk size, with tuning through open_export's keyword-only size arguments."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import all_tables, sorted_frame
from polars.testing import assert_frame_equal

from vlanalyze import open_export
from vlanalyze.query._schema import TABLES

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
        reference = all_tables(ex)
    shutil.copy2(sample_export / "metadata.json", tmp_path / "metadata.json")
    sizes = _sizes((4096, 1024, 4096))
    with open_export(tmp_path / "metadata.json", cache_dir=tmp_path / "small", **sizes) as ex:
        small = all_tables(ex)
    for table in TABLES:
        a, b = reference[table], small[table]
        if table == "info":
            a, b = a.drop("source_path"), b.drop("source_path")
        if table == "media":
            a, b = a.drop("image_path"), b.drop("image_path")
            assert a["media_id"].to_list() == b["media_id"].to_list()  # file order kept
        assert_frame_equal(
            sorted_frame(a), sorted_frame(b)
        )  # other tables: row order is no contract
