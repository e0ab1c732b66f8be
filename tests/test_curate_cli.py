"""``vlanalyze top`` and ``vlanalyze select`` through CliRunner (issue #7): output like
``sql``, the funnel on stderr, --removed, recipes, and every bad input as one Error line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from conftest import SAMPLE_EXPORT, SAMPLE_PARQUET, error_line

import vlanalyze as vla
from vlanalyze.cli import main

METADATA = str(SAMPLE_EXPORT / "metadata.json")
RULES = [
    "--exclude-issue",
    "blur",
    "--dedupe",
    "0.96",
    "--per-cluster",
    "5",
    "--top",
    "10",
    "--split",
    "train=0.8,val=0.1,test=0.1",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cli") / "cache"
    vla.open_export(METADATA, cache_dir=path).close()
    return str(path)


def run(cache: str, command: str, *args: str) -> Result:
    return CliRunner().invoke(main, [command, METADATA, "--cache-dir", cache, *args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_top_matches_the_library(cache: str) -> None:
    out = ok(run(cache, "top", "-n", "7", "-f", "csv")).stdout
    got = pl.read_csv(io.StringIO(out))
    with vla.open_export(METADATA, cache_dir=cache) as ex, vla.top(ex, 7) as sel:
        assert got["media_id"].to_list() == sel.table["media_id"].to_list()
    piped = ok(run(cache, "top", "-n", "7")).stdout  # not a terminal: csv
    assert piped == out
    assert ok(run(cache, "top", "-n", "7", "-o", "-")).stdout == out


def test_output_format_from_extension_and_overwrite(cache: str, tmp_path: Path) -> None:
    target = tmp_path / "top.json"
    result = ok(run(cache, "top", "-n", "3", "-o", str(target)))
    assert "Wrote 3 rows" in result.stderr
    assert [r["rank"] for r in json.loads(target.read_text())] == [1, 2, 3]
    before = target.read_bytes()
    line = error_line(run(cache, "top", "-n", "4", "-o", str(target)))
    assert "already exists" in line and str(target) in line
    assert target.read_bytes() == before
    ok(run(cache, "top", "-n", "4", "-o", str(target), "--overwrite"))
    assert len(json.loads(target.read_text())) == 4
    ok(run(cache, "top", "-n", "2", "-o", str(target), "--force"))  # the hidden alias
    assert sorted(p.name for p in tmp_path.iterdir()) == ["top.json"]  # no temp files left


def test_select_writes_selection_removed_and_recipe(cache: str, tmp_path: Path) -> None:
    out, removed, recipe = tmp_path / "s.parquet", tmp_path / "rm.csv", tmp_path / "r.toml"
    args = [*RULES, "-o", str(out), "--removed", str(removed), "--save-recipe", str(recipe)]
    result = ok(run(cache, "select", *args))
    assert "dedupe" in result.stderr and "rows in" in result.stderr
    assert "Leakage (split grouped by duplicates@0.96)" in result.stderr
    table = pl.read_parquet(out)
    dropped = pl.read_csv(removed)
    assert table.height == 10 and table.height + dropped.height == 46
    dups = dropped.filter(pl.col("step") == "dedupe")
    assert dups.height > 0 and dups["duplicate_of"].null_count() == 0
    meta = pq.read_schema(out).metadata
    assert meta[b"vlanalyze.recipe"].decode() == recipe.read_text()
    # the recipe reproduces the selection byte for byte; a flag given too overrides it
    again = tmp_path / "again.parquet"
    ok(run(cache, "select", "--recipe", str(recipe), "-o", str(again)))
    assert again.read_bytes() == out.read_bytes()
    five = ok(run(cache, "select", "--recipe", str(recipe), "--top", "5", "-f", "ndjson"))
    assert len(five.stdout.splitlines()) == 5


def test_funnel_quiet_and_stdout_formats(cache: str) -> None:
    result = ok(run(cache, "select", "--top", "3", "-q", "-f", "ndjson"))
    assert result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3]


def test_parquet_to_stdout_carries_the_recipe(cache: str) -> None:
    result = ok(run(cache, "select", "--top", "3", "-f", "parquet"))
    table = pq.read_table(io.BytesIO(result.stdout_bytes))
    assert table.num_rows == 3
    assert b"top = 3" in table.schema.metadata[b"vlanalyze.recipe"]


BAD = [
    (["--label", "unicorn"], ["unicorn", "astronaut"]),
    (["--no-label", "unicorn"], ["unicorn"]),
    (["--label-source", "Robot"], ["Robot", "User"]),
    (["--tag", "nope"], ["nope", "hero"]),
    (["--no-tag", "nope"], ["nope", "reviewed"]),
    (["--cluster", "c-404"], ["c-404"]),
    (["--exclude-issue", "fuzzy"], ["fuzzy", "blur", "duplicates"]),
    (["--exclude-issue", "blur>=x"], ["blur>=x", "TYPE>=CONFIDENCE"]),
    (["--exclude-object-issue", "dark"], ["dark", "blur"]),
    (["--dedupe", "0.5"], ["0.5", "0.96", "min = 0.96", "max = 1"]),
    (["--dedupe", "loose"], ["loose", "min|max"]),
    (["--top", "3", "--by", "sharpness"], ["sharpness", "uniqueness_score"]),
    (["--sample", "3", "--stratify", "colour"], ["colour", "media_type"]),
    (["--split", "train=0.8,val=0.1"], ["train=0.8,val=0.1", "sum to 1"]),
    (["--split", "train:0.8"], ["train:0.8"]),
    (["--split", "a=0.5,a=0.5"], ["a=0.5"]),
    (["--split", "a=0.5,b=0.5", "--group", "frames"], ["frames", "cluster|video|none"]),
    (["--split", "a=0.5,b=0.5", "--group", "duplicates@0.5"], ["0.5", "0.96"]),
    (["--group", "video"], ["needs a split"]),
    (["--stratify", "label"], ["need a sample"]),
    (["--where", "widthx > 3"], ["widthx", "uniqueness_score"]),
    (["--where", "width > 3; DROP TABLE media"], ["DROP TABLE", "';'"]),
    (["--where", "width >"], ["width >"]),
    (["--where", "width > $p0"], ["$p0"]),
]


@pytest.mark.parametrize(("args", "needles"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_error_line(cache: str, args: list[str], needles: list[str]) -> None:
    line = error_line(run(cache, "select", *args))
    for needle in needles:
        assert needle in line, line


def test_where_cannot_escape_its_parentheses(cache: str) -> None:
    """A predicate that closes our parenthesis stays one predicate (ours wrap it whole)."""
    result = ok(run(cache, "select", "--where", "width > 1) OR (1 = 1", "-f", "csv"))
    assert len(result.stdout.splitlines()) == 1 + 46
    line = error_line(run(cache, "select", "--where", "width > 1)) UNION SELECT ((1"))
    assert "UNION" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--top", "0"],
        ["--top", "many"],
        ["--keep", "best"],
        ["--per-cluster", "-1"],
        ["--media-type", "gif"],
        ["--seed", "x"],
    ],
)
def test_malformed_flags_exit_2(cache: str, args: list[str]) -> None:
    result = run(cache, "select", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_bad_recipe_file(cache: str, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('top = 3\nlabel = "cat"\n')
    line = error_line(run(cache, "select", "--recipe", str(recipe)))
    assert "label" in line and "labels" in line
    recipe.write_text("top = [")
    assert "not valid TOML" in error_line(run(cache, "select", "--recipe", str(recipe)))


def test_existing_side_files_are_refused_before_any_work(cache: str, tmp_path: Path) -> None:
    out, removed = tmp_path / "s.csv", tmp_path / "rm.csv"
    removed.write_text("mine\n")
    line = error_line(run(cache, "select", "--top", "3", "-o", str(out), "--removed", str(removed)))
    assert str(removed) in line
    assert not out.exists() and removed.read_text() == "mine\n"


def test_vlanalyze_top_is_the_seed_pandas_recipe(tmp_path: Path) -> None:
    """The export page's example, `df.sort_values(by="uniqueness_score",
    ascending=False).head(100)`, on metadata.parquet, against the command."""
    pd = pytest.importorskip("pandas")
    metadata = SAMPLE_PARQUET
    df = pd.read_parquet(metadata)
    expected = df.sort_values(by="uniqueness_score", ascending=False).head(100)
    args = ["top", str(metadata), "--cache-dir", str(tmp_path / "c"), "-n", "100", "-f", "csv"]
    got = pl.read_csv(io.StringIO(ok(CliRunner().invoke(main, args)).stdout))
    assert got["media_id"].to_list() == expected["media_id"].tolist()
    assert got["uniqueness_score"].to_list() == expected["uniqueness_score"].tolist()
