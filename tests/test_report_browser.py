"""The report in a real headless browser (Debian's chromium over the DevTools protocol):
it loads from file:// with no console error and no network request, shows the expected
number of images per section (every one decoded), and names from the data are shown,
not run. Screenshots go to ``.test-artifacts/`` at the repository root. Skipped with a
reason where chromium is absent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import vlanalyze as vla
from tests.browser import open_page, require_browser
from tests.test_report import HOSTILE_LABEL, hostile_export

ARTIFACTS = Path(__file__).resolve().parents[1] / ".test-artifacts"

COUNT = """JSON.stringify({
  sections: Object.fromEntries([...document.querySelectorAll('section')].map(
    s => [s.id, s.querySelectorAll('a.tile').length])),
  images: document.images.length,
  decoded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
  keep: document.querySelectorAll('#duplicates a.tile.keep').length,
  groups: document.querySelectorAll('#duplicates .group').length,
  width: document.documentElement.scrollWidth,
  pwned: window.__pwned === undefined ? null : window.__pwned,
  titles: [...document.querySelectorAll('a.tile')].map(a => a.title),
  scripts: document.scripts.length,
})"""


pytestmark = pytest.mark.slow  # a browser start is seconds


@pytest.fixture(scope="module", autouse=True)
def _browser() -> None:
    require_browser()


def test_helper_sees_errors_and_requests(tmp_path: Path) -> None:
    # The checks below can fail: a page that throws and asks the network is caught.
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><img src='http://127.0.0.1:9/x.png'><script>throw new Error('boom')"
        "</script>",
        encoding="utf-8",
    )
    run = open_page(page, "1")
    assert any("boom" in e for e in run.errors)
    assert run.requests == ["http://127.0.0.1:9/x.png"]


def _load(html: Path, shot: str) -> tuple[Any, dict[str, Any]]:
    ARTIFACTS.mkdir(exist_ok=True)
    run = open_page(html, COUNT, screenshot=ARTIFACTS / shot)
    assert run.errors == []
    assert run.requests == []
    assert run.screenshot is not None and run.screenshot.stat().st_size > 10_000
    return run, json.loads(run.value)


def test_sample_report_in_the_browser(tmp_path: Path, sample_export: Path) -> None:
    ex = vla.open_export(sample_export / "metadata.json", cache_dir=tmp_path / "c")
    rows = ex.sql(
        "SELECT media_id, CASE WHEN uniqueness_score > 0.3 THEN 'train' ELSE 'val' END AS split "
        "FROM media ORDER BY uniqueness_score DESC, media_id LIMIT 25"
    )
    made = vla.report(ex, tmp_path / "report.html", selection=rows)
    _run, page = _load(made.path, "report-sample.png")
    assert page["sections"] == {
        "overview": 0,
        "duplicates": made.tiles["duplicates"],
        "clusters": made.tiles["clusters"],
        "selection": 25,
    }
    assert made.tiles == {"duplicates": 41, "clusters": 46, "selection": 25}
    assert page["decoded"] == page["images"] == 41 + 46 + 25 + 4  # + the 4 charts
    assert page["keep"] == page["groups"] == 11
    assert page["scripts"] == 0
    assert page["width"] <= 1280  # no sideways scrolling of the page itself
    assert all("uniqueness_score: " in t and "labels: " in t for t in page["titles"])


def test_a_script_label_is_shown_not_run(tmp_path: Path, export_kit: Any) -> None:
    ex = vla.open_export(hostile_export(tmp_path / "e", export_kit))
    made = vla.report(ex, tmp_path / "r.html")
    _run, page = _load(made.path, "report-hostile.png")
    assert page["pwned"] is None
    assert page["scripts"] == 0
    assert any(HOSTILE_LABEL in t for t in page["titles"])  # the label as text, on hover
    assert page["sections"]["duplicates"] == 2 and page["sections"]["clusters"] == 2
