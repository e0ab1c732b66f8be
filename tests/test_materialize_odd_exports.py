"""Materialize from exports with odd metadata: null or blank categories, boxes past the
image's edge, missing sizes, a media id listed twice, empty names; and selections with
list columns or a BOM. Each gives the right files or one clear line, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from materialize_kit import item, write_export

import vlanalyze as vla
from vlanalyze.cli import main
from vlanalyze.errors import MaterializeError, SelectionError


def _run(folder: Path, out: Path, ids: list[str], **options: Any) -> vla.MaterializeResult:
    with vla.open_export(folder, cache_dir=folder.parent / "cache") as ex:
        selection = pl.DataFrame({"media_id": ids})
        return vla.materialize(vla.plan_materialize(ex, selection, out, **options))


def test_null_and_blank_categories_name_nothing(tmp_path: Path) -> None:
    """A User label that is null or blank does not beat a real one; boxes without a
    category are left out of YOLO, COCO and hf (they used to end in a TypeError)."""
    boxes = [("cat", [1, 1, 5, 5]), (None, [2, 2, 3, 3]), (" ", [0, 0, 1, 1])]
    items = [
        item("n1", "p/a.jpg", labels=[(None, "User"), ("dog", "User"), ("", "User")]),
        item("n2", "p/b.jpg", boxes=boxes),
    ]
    export = write_export(tmp_path / "ex", items)
    _run(export, tmp_path / "bl", ["n1", "n2"], layout="by-label")
    assert sorted(p.parent.name for p in (tmp_path / "bl").rglob("*.jpg")) == ["dog", "unlabeled"]
    _run(export, tmp_path / "yolo", ["n2"], layout="yolo")
    assert (tmp_path / "yolo/labels/train/b__n2.txt").read_text().count("\n") == 1
    _run(export, tmp_path / "coco", ["n2"], layout="coco")
    doc = json.loads((tmp_path / "coco/annotations/instances_train.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["cat"] and len(doc["annotations"]) == 1
    _run(export, tmp_path / "hf", ["n1", "n2"], layout="hf")
    text = (tmp_path / "hf/train/metadata.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert [row["objects"]["categories"] for row in rows] == [[], ["cat"]]
    assert [row.get("labels") for row in rows] == [["dog"], []]


def test_yolo_boxes_past_the_edge_are_clipped(tmp_path: Path) -> None:
    """Ultralytics drops an image whose label values leave [0, 1]: boxes are clipped to
    the image (200x100), one wholly outside is left out, and a note says so."""
    boxes = [("a", [190, 90, 20, 20]), ("b", [-30, 10, 40, 40]), ("c", [250, 10, 5, 5])]
    export = write_export(tmp_path / "ex", [item("m1", "p/a.jpg", boxes=boxes)])
    with vla.open_export(export, cache_dir=tmp_path / "cache") as ex:
        plan = vla.plan_materialize(ex, pl.DataFrame({"media_id": ["m1"]}), tmp_path / "o",
                                    layout="yolo")  # fmt: skip
    lines = [
        line.split() for line in plan.side_files["labels/train/a__m1.txt"].decode().splitlines()
    ]
    # independently: a -> x 190..200, y 90..100; b -> x 0..10, y 10..50
    expected = [
        [0, 195 / 200, 95 / 100, 10 / 200, 10 / 100],
        [1, 5 / 200, 30 / 100, 10 / 200, 40 / 100],
    ]
    assert len(lines) == 2
    for got, want in zip(lines, expected, strict=True):
        assert int(got[0]) == want[0]
        assert [float(v) for v in got[1:]] == pytest.approx(want[1:], abs=1e-6)
        assert all(0 <= float(v) <= 1 for v in got[1:])
    assert any("3 boxes reach past their image's edge, 1 of them wholly outside" in n
               for n in plan.notes)  # fmt: skip


def test_coco_without_sizes_is_refused(tmp_path: Path) -> None:
    """COCO's images need width and height: an item without them is named (it used to
    write nulls)."""
    export = write_export(tmp_path / "ex", [item("w1", "p/a.jpg", width=None, height=None)])
    with pytest.raises(MaterializeError, match="coco: media w1 has no width/height"):
        _run(export, tmp_path / "o", ["w1"], layout="coco")
    assert not (tmp_path / "o").exists()


def test_a_media_id_listed_twice_is_refused(tmp_path: Path) -> None:
    items = [item("d1", "p/a.jpg"), item("d1", "p/b.jpg"), item("d2", "p/c.jpg")]
    export = write_export(tmp_path / "ex", items)
    with pytest.raises(MaterializeError, match=r"lists media id d1 2 times .*'p/a.jpg', 'p/b.jpg'"):
        _run(export, tmp_path / "o", ["d1", "d2"])
    assert not (tmp_path / "o").exists()
    _run(export, tmp_path / "o", ["d2"])  # the rest of the export is fine
    assert (tmp_path / "o/c__d2.jpg").is_file()


def test_an_empty_file_name_takes_the_file_path_s(tmp_path: Path) -> None:
    export = write_export(tmp_path / "ex", [item("e1", "p/x.jpg", file_name="")])
    _run(export, tmp_path / "o", ["e1"])
    assert (tmp_path / "o/x__e1.jpg").is_file()


def test_imagefolder_splits_with_different_labels_are_noted(tmp_path: Path) -> None:
    items = [item(m, f"p/{m}.jpg") for m in ("c1", "d1", "d2")]
    export = write_export(tmp_path / "ex", items)
    selection = pl.DataFrame(
        {
            "media_id": ["c1", "d1", "d2"],
            "label": ["cat", "dog", "dog"],
            "split": ["train", "train", "val"],
        }
    )
    with vla.open_export(export, cache_dir=tmp_path / "cache") as ex:
        plan = vla.plan_materialize(ex, selection, tmp_path / "o", layout="imagefolder")
        same = vla.plan_materialize(ex, selection.with_columns(split=pl.lit("train")),
                                    tmp_path / "o2", layout="imagefolder")  # fmt: skip
    assert any("imagefolder: the splits hold different labels (val lacks cat)" in n
               for n in plan.notes)  # fmt: skip
    assert same.notes == []


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame({"media_id": ["a"], "label": [["x", "y"]]}),
        pl.DataFrame({"media_id": [["a"]]}),
    ],
)
def test_list_columns_in_a_selection_are_one_clear_error(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    """What ``vlanalyze sql ... list(category_name) AS label`` writes (a traceback before)."""
    path = tmp_path / "sel.parquet"
    frame.write_parquet(path)
    export = write_export(tmp_path / "ex", [item("a", "p/a.jpg")])
    with pytest.raises(SelectionError, match="column holds List"):
        vla.read_selection(frame)
    result = CliRunner().invoke(
        main, ["materialize", str(export), str(path), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not one" in result.output and "per row" in result.output


def test_an_ndjson_selection_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sel.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"media_id": "a", "label": "x"}\n')
    selection = vla.read_selection(path)
    assert selection.frame.rows() == [("a", "x", None)]


def test_default_names_part_ids_that_differ_only_in_case_or_unsafe_characters(
    tmp_path: Path,
) -> None:
    """Non-UUID ids ``id-1``/``ID-1`` (one name on macOS and Windows) and ``a:b``/``a_b``
    (one name once made safe) still give distinct default names."""
    ids = ["id-1", "ID-1", "a:b", "a_b", "uniq"]
    export = write_export(tmp_path / "ex", [item(m, f"p{i}/x.jpg") for i, m in enumerate(ids)])
    _run(export, tmp_path / "o", ids)
    names = sorted(p.name for p in (tmp_path / "o").glob("*.jpg"))
    assert len(names) == 5 and len({n.lower() for n in names}) == 5
    assert "x__uniq.jpg" in names  # the others keep the short name
    assert all(n.startswith(("x__id-1-", "x__ID-1-", "x__a_b-")) for n in names if "uniq" not in n)
