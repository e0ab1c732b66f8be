"""vlanalyze demo: the whole loop offline (stand-in -> fetch -> select -> materialize ->
report) on the sample; every output opens, and every printed command is a real one."""

from __future__ import annotations

import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import vlanalyze as vla
from tests.conftest import error_line
from vlanalyze.cli import main


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("demo") / "run"
    result = CliRunner().invoke(main, ["demo", str(folder)])
    assert result.exit_code == 0, result.output
    return folder, result.stdout


def test_demo_prints_each_step_and_where_to_look(demo_dir: tuple[Path, str]) -> None:
    folder, out = demo_dir
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    words = [[w for w in shlex.split(c) if "=" not in w] for c in commands]  # no VL_...=
    verbs = [w[1] for w in words]
    assert verbs == ["stand-in", "fetch", "select", "materialize", "report"]
    for name in ("export", "selection.parquet", "dataset", "report.html"):
        assert f"-> look at {folder / name}" in out
    assert (folder / "report.html").as_uri() in out


def test_demo_outputs_open(demo_dir: tuple[Path, str]) -> None:
    folder, _ = demo_dir
    ex = vla.open_export(folder / "export")
    assert ex.counts["media"] == 46 and ex.info.images.found == 46
    table = pq.read_table(folder / "selection.parquet")
    assert table.num_rows == 12 and set(table.column("split").to_pylist()) == {"train", "val"}
    assert b"vlanalyze.recipe" in (table.schema.metadata or {})
    images = sorted(p for p in (folder / "dataset").rglob("*.jpg"))
    assert len(images) + len(list((folder / "dataset").rglob("*.png"))) == 12
    assert {p.relative_to(folder / "dataset").parts[0] for p in images} <= {"train", "val"}
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert '<section id="selection">' in html and "<h3>Funnel</h3>" in html


def test_the_printed_select_command_gives_the_same_selection(
    demo_dir: tuple[Path, str], tmp_path: Path
) -> None:
    folder, out = demo_dir
    line = next(line[2:] for line in out.splitlines() if line.startswith("$ vlanalyze select"))
    args = shlex.split(line)[1:]
    args[args.index("-o") + 1] = str(tmp_path / "again.parquet")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ours = pq.read_table(tmp_path / "again.parquet")
    assert ours.equals(pq.read_table(folder / "selection.parquet"))


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    line = error_line(CliRunner().invoke(main, ["demo", str(tmp_path)]))
    assert "is not empty" in line
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


@pytest.mark.slow
def test_demo_report_opens_in_the_browser(demo_dir: tuple[Path, str]) -> None:
    from tests.browser import open_page, require_browser

    require_browser()
    folder, _ = demo_dir
    run = open_page(
        folder / "report.html", "document.querySelectorAll('#selection a.tile img').length"
    )
    assert run.errors == [] and run.requests == []
    assert run.value == 12
