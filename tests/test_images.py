"""Matching media items to image files: by file_path, media_id, then unique file_name."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from vlanalyze import open_export

# --- image resolution --------------------------------------------------------------------


def test_image_resolution(tmp_path: Path, export_kit: Any) -> None:
    kit = export_kit
    folder = tmp_path / "export"
    items = [
        kit.item("p1", file_path="d/p1.jpg", file_name="p1.jpg"),  # file_path mirror
        kit.item("id2", file_path="x/y/some.jpg", file_name="some.jpg"),  # <media_id>.jpg
        kit.item("n3", file_path="elsewhere/n3name.jpg", file_name="n3name.jpg"),  # unique name
        kit.item("v1", file_path="vidA.mp4/output_000001.jpg", file_name="output_000001.jpg"),
        kit.item("v2", file_path="vidB.mp4/output_000001.jpg", file_name="output_000001.jpg"),
        kit.item("gone", file_path="nope/none.jpg", file_name="none.jpg"),
    ]
    kit.write_json(folder / "metadata.json", items)
    for rel in [
        "d/p1.jpg",
        "id2.jpg",
        "flat/n3name.jpg",
        "a/output_000001.jpg",
        "b/output_000001.jpg",
    ]:
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / rel).write_bytes(b"\xff\xd8")
    with open_export(folder, cache_dir=tmp_path / "cache") as ex:
        assert asdict(ex.info.images) == {"files": 5, "found": 3, "missing": 3, "ambiguous": 2}
        paths = dict(ex.media.select("media_id", "image_path").collect().iter_rows())
        via_sql = dict(ex.sql("SELECT media_id, image_path FROM media").iter_rows())
    expected = {
        "p1": "images/d/p1.jpg",
        "id2": "images/id2.jpg",
        "n3": "images/flat/n3name.jpg",
        "v1": None,
        "v2": None,
        "gone": None,
    }
    assert paths == expected
    assert via_sql == expected
    for rel in filter(None, expected.values()):
        assert (folder / rel).is_file()


def test_file_path_wins_over_name(tmp_path: Path, export_kit: Any) -> None:
    folder = tmp_path / "export"
    export_kit.write_json(
        folder / "metadata.json",
        [export_kit.item("a", file_path="v.mp4/output_000001.jpg", file_name="output_000001.jpg")],
    )
    for rel in ["v.mp4/output_000001.jpg", "w.mp4/output_000001.jpg"]:
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / rel).write_bytes(b"x")
    with open_export(folder, cache_dir=tmp_path / "cache") as ex:
        assert ex.media.collect()["image_path"].to_list() == ["images/v.mp4/output_000001.jpg"]
        assert ex.info.images.ambiguous == 0


def test_a_file_another_item_names_is_never_a_fallback(tmp_path: Path, export_kit: Any) -> None:
    """A partial images/ folder: an item whose image is absent must not take the one
    file of the same name that another item's file_path (or media id) names."""
    kit = export_kit
    folder = tmp_path / "export"
    kit.write_json(
        folder / "metadata.json",
        [
            kit.item("gone1", file_path="a/x.jpg", file_name="x.jpg"),  # absent
            kit.item("has-x", file_path="b/x.jpg", file_name="x.jpg"),  # present
            kit.item("gone2", file_path="a/has-id.jpg", file_name="has-id.jpg"),  # absent
            kit.item("has-id", file_path="elsewhere/q.jpg", file_name="q.jpg"),  # by its id
            kit.item("twin1", file_path="c/t.jpg", file_name="t.jpg"),  # absent
            kit.item("twin2", file_path="d/t.jpg", file_name="t.jpg"),  # absent
        ],
    )
    for rel in ["b/x.jpg", "has-id.jpg", "e/t.jpg"]:
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / rel).write_bytes(b"x")
    with open_export(folder, cache_dir=tmp_path / "cache") as ex:
        paths = dict(ex.media.select("media_id", "image_path").collect().iter_rows())
        counts = asdict(ex.info.images)
    assert paths == {
        "gone1": None,
        "has-x": "images/b/x.jpg",
        "gone2": None,
        "has-id": "images/has-id.jpg",
        "twin1": None,  # one file e/t.jpg, two items named t.jpg: whose is it?
        "twin2": None,
    }
    assert counts == {"files": 3, "found": 2, "missing": 4, "ambiguous": 2}


def test_no_images_folder(hand_json: Path, tmp_path: Path) -> None:
    with open_export(hand_json.parent, cache_dir=tmp_path / "cache") as ex:
        assert asdict(ex.info.images) == {"files": 0, "found": 0, "missing": 5, "ambiguous": 0}
        assert ex.media.collect()["image_path"].null_count() == 5
        assert ex.sql("SELECT count(image_path) AS n FROM media")["n"].item() == 0
