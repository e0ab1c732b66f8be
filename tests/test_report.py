"""The HTML report (vla.report / vlanalyze report): what it shows, bounded; thumbnails
and their cache; a ZIP read in place; names from the data escaped; bad input. The page
in a real browser: tests/test_report_browser.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

import vlanalyze as vla
from tests.conftest import error_line
from vlanalyze.cli import main


def _tiles(html: str, section: str) -> int:
    """How many image tiles the section ``section`` holds."""
    start = html.index(f'<section id="{section}">')
    end = html.index("</section>", start)
    return html[start:end].count('<a class="tile')


def _groups_expected(ex: vla.Export, level: float, groups: int, members: int) -> int:
    """Tiles the duplicates section should show, computed here with polars."""
    issues = ex.issues.collect()
    sizes = (
        issues.filter(
            (pl.col("issue_type") == "duplicates")
            & pl.col("object_id").is_null()
            & (pl.col("duplicate_threshold") == level)
        )
        .group_by("duplicate_group_id")
        .agg(n=pl.col("media_id").n_unique())
        .filter(pl.col("n") >= 2)
        .sort(["n", "duplicate_group_id"], descending=[True, False])
        .head(groups)
    )
    return int(sizes["n"].clip(upper_bound=members).sum())


def test_sample_report_shows_every_section(tmp_path: Path, sample_export: Path) -> None:
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "cache")
    made = vla.report(ex, tmp_path / "report.html")
    html = made.path.read_text(encoding="utf-8")
    assert made.level == 0.96  # the loosest level present
    assert made.tiles["duplicates"] == _tiles(html, "duplicates")
    assert _tiles(html, "duplicates") == _groups_expected(ex, 0.96, 24, 8) == 41
    assert _tiles(html, "clusters") == 46  # 10 clusters, none over 12 images
    assert made.thumbnails == 46  # every sample item has its image
    assert html.count('src="data:image/jpeg;base64,') == 41 + 46
    assert html.count('src="data:image/svg+xml;base64,') == 3  # histogram, issues, labels
    assert "<script" not in html and 'http-equiv="Content-Security-Policy"' in html
    # every tile links to its Visual Layer url and says what it is on hover
    ids = ex.sql("SELECT media_id, url, file_path FROM media").rows()
    for _media_id, url, file_path in ids:
        assert f'href="{url}"' in html
        assert f"{file_path}\nuniqueness_score: " in html


def test_the_kept_image_is_marked(tmp_path: Path, sample_export: Path) -> None:
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "cache")
    html = vla.report(ex, tmp_path / "r.html", dedupe="max").path.read_text(encoding="utf-8")
    # at 1.0 one group: the re-uploaded coffee; the original has the higher score
    best = ex.sql(
        "SELECT i.media_id FROM issues i JOIN media m USING (media_id) WHERE i.issue_type = "
        "'duplicates' AND i.object_id IS NULL AND i.duplicate_threshold = 1.0 "
        "ORDER BY m.uniqueness_score DESC, media_id LIMIT 1"
    ).item()
    section = html[html.index('<section id="duplicates">') :]
    assert section.count('class="tile keep"') == 1
    assert 'class="tile keep" href=' in section
    kept = section.split('class="tile keep"', 1)[1].split("data-media-id=", 1)[1]
    assert kept.startswith(f'"{best}"')


@pytest.mark.parametrize("level", ["0.97", "min", "max"])
def test_dedupe_level(tmp_path: Path, sample_export: Path, level: str) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(sample_export / "metadata.json"),
            "--cache-dir",
            str(tmp_path / "c"),
            "--dedupe",
            level,
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    shown = {"0.97": "0.97", "min": "0.96", "max": "1"}[level]
    assert f"<h2>Duplicate groups at {shown}</h2>" in out.read_text(encoding="utf-8")
    assert "Wrote " in result.stderr


def test_bounded_by_the_limits(tmp_path: Path, export_kit: Any) -> None:
    # 300 duplicate groups of 3 and 50 clusters of 6: the page shows the limits only
    items = [
        export_kit.item(
            f"m{i:04d}",
            uniqueness_score=(i % 97) / 100,
            cluster_id=f"c{i % 50:02d}",
            metadata_items=[_dup(f"g{i // 3:03d}", 0.9)],
        )
        for i in range(900)
    ]
    ex = vla.open_export(export_kit.write_json(tmp_path / "e" / "metadata.json", items))
    limits = vla.ReportLimits(groups=5, members=2, clusters=3, cluster_members=4)
    made = vla.report(ex, tmp_path / "r.html", limits=limits)
    html = made.path.read_text(encoding="utf-8")
    assert _tiles(html, "duplicates") == 5 * 2 and _tiles(html, "clusters") == 3 * 4
    assert "300 groups of 2+ images" in html and "Showing the 5 biggest (at most 5)" in html
    assert "50 clusters. Showing the 3 largest" in html
    assert "no image" in html  # a metadata-only export: placeholders, still linked


def _dup(group: str, level: float) -> dict[str, object]:
    return {
        "type": "issue",
        "properties": {
            "issue_type": "duplicates",
            "confidence": 0.97,
            "duplicate_group_id": group,
            "duplicate_threshold": level,
        },
    }


def test_zip_is_read_in_place_and_thumbnails_are_cached(
    tmp_path: Path, sample_export: Path, export_kit: Any
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "metadata.json").write_bytes((sample_export / "metadata.json").read_bytes())
    import shutil

    shutil.copytree(sample_export / "images", folder / "images")
    archive = export_kit.zip_folder(folder, tmp_path / "export.zip", prefix="exported/")
    shutil.rmtree(folder)
    ex = vla.open_export(archive)
    made = vla.report(ex, tmp_path / "r.html")
    assert made.thumbnails == 46
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "export.zip",
        "r.html",
    ]  # nothing extracted
    thumbs = ex.cache_path.parent / "thumbnails"  # beside the cache's builds
    files = {p: p.stat().st_mtime_ns for p in thumbs.rglob("*.jpg")}
    assert len(files) == 46
    again = vla.report(ex, tmp_path / "r.html", overwrite=True)
    assert again.path.read_bytes() == made.path.read_bytes()  # deterministic
    assert {p: p.stat().st_mtime_ns for p in thumbs.rglob("*.jpg")} == files  # none made


def test_a_changed_image_gets_a_new_thumbnail(tmp_path: Path, sample_json_copy: Path) -> None:
    from PIL import Image

    ex = vla.open_export(sample_json_copy)
    vla.report(ex, tmp_path / "a.html", workers=1)
    thumbs = ex.cache_path.parent / "thumbnails"
    before = set(thumbs.rglob("*.jpg"))
    Image.new("RGB", (64, 48), "red").save(sample_json_copy / "images/photos/coffee.jpg")
    vla.report(ex, tmp_path / "b.html", workers=1)
    assert len(set(thumbs.rglob("*.jpg")) - before) == 1


def test_unreadable_image_is_a_placeholder(tmp_path: Path, sample_json_copy: Path) -> None:
    (sample_json_copy / "images/photos/coffee.jpg").write_bytes(b"not a jpeg")
    made = vla.report(vla.open_export(sample_json_copy), tmp_path / "r.html")
    assert made.thumbnails == 45
    assert '<div class="ph">no image</div>' in made.path.read_text(encoding="utf-8")


HOSTILE_LABEL = "<script>window.__pwned = 1</script>"
HOSTILE_PATH = 'dir/"><img src=x onerror="window.__pwned=2">.jpg'


def hostile_export(root: Path, export_kit: Any) -> Path:
    """Labels, paths, ids and urls that would be markup or script if not escaped."""
    label = {
        "type": "image_label",
        "properties": {"category_name": HOSTILE_LABEL, "source": "User", "original_id": 1},
    }
    dollars = {
        "type": "image_label",
        "properties": {"category_name": "$x^2$ & <b>", "source": "User", "original_id": 2},
    }
    items = [
        export_kit.item(
            "m0",
            file_path=HOSTILE_PATH,
            url="javascript:window.__pwned=3",
            metadata_items=[label, dollars, _dup("<g>", 0.9)],
        ),
        export_kit.item(
            "m1",
            cluster_id="</section><script>window.__pwned=4</script>",
            metadata_items=[label, _dup("<g>", 0.9)],
        ),
    ]
    return export_kit.write_json(root / "metadata.json", items)


def test_names_from_the_data_are_escaped(tmp_path: Path, export_kit: Any) -> None:
    ex = vla.open_export(hostile_export(tmp_path / "e", export_kit))
    html = vla.report(ex, tmp_path / "r.html").path.read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html  # shown in the hover
    assert "javascript:" not in html  # a link target from data is http(s) or nothing
    assert html.count('<section id="') == 3  # the cluster id did not close a section


def test_selection_dataframe_and_file(tmp_path: Path, sample_export: Path) -> None:
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "c")
    rows = ex.sql(
        "SELECT media_id, CASE WHEN uniqueness_score > 0.5 THEN 'train' ELSE 'val' END AS split "
        "FROM media ORDER BY uniqueness_score DESC, media_id LIMIT 30"
    ).with_row_index("rank", offset=1)
    made = vla.report(ex, tmp_path / "df.html", selection=rows)
    html = made.path.read_text(encoding="utf-8")
    assert made.tiles["selection"] == _tiles(html, "selection") == 30
    assert "No funnel" in html and "<h3>Splits</h3>" in html and "<h3>Leakage</h3>" in html
    # the same rows as a CSV, through the CLI
    rows.write_csv(tmp_path / "picked.csv")
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(sample_export / "metadata.json"),
            "--cache-dir",
            str(tmp_path / "c"),
            "--selection",
            str(tmp_path / "picked.csv"),
            "-o",
            str(tmp_path / "csv.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert _tiles((tmp_path / "csv.html").read_text(encoding="utf-8"), "selection") == 30


def test_selection_leakage_is_counted(tmp_path: Path, sample_export: Path) -> None:
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "c")
    # alternate splits by rank: every duplicate group with 2+ members straddles
    rows = ex.sql("SELECT media_id, video_name FROM media ORDER BY media_id").with_columns(
        split=pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.lit("train"))
        .otherwise(pl.lit("test"))
    )
    groups = ex.sql(
        "SELECT duplicate_group_id AS g, media_id FROM issues WHERE issue_type='duplicates' "
        "AND object_id IS NULL AND duplicate_threshold = 0.96"
    ).join(rows, on="media_id")
    want_dup = groups.group_by("g").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1)
    want_vid = (
        rows.drop_nulls("video_name")
        .group_by("video_name")
        .agg(pl.col("split").n_unique())
        .filter(pl.col("split") > 1)
    )
    html = vla.report(ex, tmp_path / "r.html", selection=rows.drop("video_name")).path.read_text(
        encoding="utf-8"
    )
    assert (
        f"{want_dup.height} near-duplicate groups at 0.96 and {want_vid.height} videos have "
        "images in more than one split" in html
    )
    assert want_dup.height > 0 and want_vid.height > 0


def test_plots_are_svg_for_notebooks(tmp_path: Path, sample_export: Path) -> None:
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "c")
    for plot in (vla.plot_uniqueness(ex), vla.plot_issues(ex), vla.plot_labels(ex, top=5)):
        svg = plot._repr_svg_()
        assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert vla.plot_uniqueness(ex).svg() == vla.plot_uniqueness(ex).svg()  # deterministic
    assert "duplicates" in vla.plot_issues(ex).svg()
    sel = ex.sql("SELECT media_id, 'train' AS split FROM media")
    assert "train" in vla.plot_splits(ex, sel).svg()
    with pytest.raises(vla.SelectionError, match="no split column"):
        vla.plot_splits(ex, ex.sql("SELECT media_id FROM media"))


def test_bad_input_is_one_error_line(tmp_path: Path, sample_export: Path) -> None:
    meta = str(sample_export / "metadata.json")
    base = ["report", meta, "--cache-dir", str(tmp_path / "c")]
    out = tmp_path / "r.html"
    line = error_line(CliRunner().invoke(main, [*base, "--dedupe", "0.5", "-o", str(out)]))
    assert "0.5" in line and "0.96, 0.97" in line
    assert not out.exists()
    out.write_text("mine")
    line = error_line(CliRunner().invoke(main, [*base, "-o", str(out)]))
    assert "already exists" in line and "--overwrite" in line
    assert out.read_text() == "mine"
    bad = tmp_path / "sel.csv"
    bad.write_text("id\n1\n")
    line = error_line(
        CliRunner().invoke(main, [*base, "--selection", str(bad), "-o", str(tmp_path / "x.html")])
    )
    assert "no media_id column" in line and "id" in line
    bad.with_suffix(".txt").write_text("x")
    line = error_line(
        CliRunner().invoke(
            main,
            [*base, "--selection", str(bad.with_suffix(".txt")), "-o", str(tmp_path / "x.html")],
        )
    )
    assert "cannot tell the format" in line
    assert not (tmp_path / "x.html").exists()


def test_kept_marks_match_select_dedupe_and_a_selection_object(
    tmp_path: Path, sample_export: Path
) -> None:
    if not hasattr(vla, "select"):
        pytest.skip("vla.select (the curate layer) is not in this tree")
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "c")
    with vla.select(ex, dedupe="min") as deduped:
        survivors = set(deduped.table["media_id"].to_list())
    html = vla.report(ex, tmp_path / "a.html").path.read_text(encoding="utf-8")
    section = html[html.index('<section id="duplicates">') : html.index('<section id="clusters">')]
    marked = {
        part.split("data-media-id=", 1)[1].split('"')[1]
        for part in section.split('class="tile keep"')[1:]
    }
    assert len(marked) == 11 and marked <= survivors  # each group's KEEP is what select keeps
    with vla.select(ex, exclude_issues=["blur"], dedupe="min", split={"a": 0.5, "b": 0.5}) as sel:
        made = vla.report(ex, tmp_path / "b.html", selection=sel)
        assert made.tiles["selection"] == sel.rows
    page = made.path.read_text(encoding="utf-8")
    assert "<h3>Funnel</h3>" in page and "<h3>Why rows were removed</h3>" in page
    assert "duplicate at 0.96 (keep uniqueness)" in page and "<h3>Recipe</h3>" in page
