"""The query commands (``info``, ``sql``, ``convert``) through click's CliRunner, and the
package's import contract (issue #2). Paths are absolute; every cache and output lives in
tmp_path."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner, Result
from conftest import SAMPLE_COUNTS, error_line

from vlanalyze import open_export
from vlanalyze.cli import main
from vlanalyze.query._schema import TABLES

REPO = Path(__file__).resolve().parents[1]
TOP5 = (
    "SELECT media_id, file_size, uniqueness_score FROM media "
    "ORDER BY uniqueness_score DESC, media_id LIMIT 5"
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The sample's metadata.json and a cache folder for it, built once for the module."""
    metadata = REPO / "sample_data" / "export-json" / "metadata.json"
    cache = tmp_path_factory.mktemp("cli") / "cache"
    open_export(metadata, cache_dir=cache).close()
    return str(metadata), str(cache)


@pytest.fixture(scope="module")
def top5(sample: tuple[str, str]) -> list[dict[str, object]]:
    with open_export(sample[0], cache_dir=sample[1]) as ex:
        df = ex.media.sort(["uniqueness_score", "media_id"], descending=[True, False]).head(5)
        return df.select("media_id", "file_size", "uniqueness_score").collect().to_dicts()


def _run(sample: tuple[str, str], *args: str) -> Result:
    command, rest = args[0], args[1:]
    return CliRunner().invoke(main, [command, sample[0], "--cache-dir", sample[1], *rest])


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _error_line(result: Result) -> str:
    line = error_line(result)
    return line


# --- info --------------------------------------------------------------------------------


def test_info_text(sample: tuple[str, str]) -> None:
    out = _ok(_run(sample, "info")).stdout
    assert "vlanalyze sample" in out
    for table, count in SAMPLE_COUNTS.items():
        assert re.search(rf"^\s+{table}\s+{count}\s*$", out, re.MULTILINE), table
    assert "46 found, 0 missing, 0 ambiguous (46 files in images/)" in out
    assert "duplicates" in out and "Duplicate levels" in out


def test_info_json(sample: tuple[str, str]) -> None:
    data = json.loads(_ok(_run(sample, "info", "--json", "--top", "3")).stdout)
    assert data["counts"] == SAMPLE_COUNTS
    assert data["images"] == {"files": 46, "found": 46, "missing": 0, "ambiguous": 0}
    assert data["export"]["dataset"] == "vlanalyze sample"
    assert data["export"]["format"] == "json"
    issue_types = {r["issue_type"]: r for r in data["issue_types"]}
    assert issue_types["duplicates"]["image_rows"] == 122
    assert issue_types["duplicates"]["object_rows"] == 323
    assert issue_types["blur"]["image_rows"] == 4 and issue_types["blur"]["object_rows"] == 10
    levels = {r["threshold"]: r["groups"] for r in data["duplicate_levels"]}
    assert levels == {0.96: 12, 0.97: 12, 0.98: 10, 0.99: 8, 1.0: 1}
    assert len(data["top_labels"]) == 3
    q = data["uniqueness_quantiles"]
    assert 0 <= q["p0"] <= q["p50"] <= q["p100"] <= 1
    assert list(data) == [
        "export",
        "counts",
        "images",
        "issue_types",
        "duplicate_levels",
        "top_labels",
        "uniqueness_quantiles",
    ]
    assert list(data["export"])[-3:] == ["format", "source", "metadata"]  # after the block


# --- sql ---------------------------------------------------------------------------------


def test_sql_csv_is_the_default_when_piped(sample: tuple[str, str], top5: list[dict]) -> None:
    result = _ok(_run(sample, "sql", TOP5))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["media_id"] for r in rows] == [r["media_id"] for r in top5]
    assert [int(r["file_size"]) for r in rows] == [r["file_size"] for r in top5]
    assert [float(r["uniqueness_score"]) for r in rows] == [r["uniqueness_score"] for r in top5]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_sql_delimited(sample: tuple[str, str], top5: list[dict], fmt: str) -> None:
    out = _ok(_run(sample, "sql", TOP5, "--format", fmt)).stdout
    rows = list(csv.DictReader(io.StringIO(out), delimiter="," if fmt == "csv" else "\t"))
    assert [(r["media_id"], int(r["file_size"])) for r in rows] == [
        (r["media_id"], r["file_size"]) for r in top5
    ]


def test_sql_json(sample: tuple[str, str], top5: list[dict]) -> None:
    out = _ok(_run(sample, "sql", TOP5, "-f", "json")).stdout
    assert json.loads(out) == top5


def test_sql_ndjson(sample: tuple[str, str], top5: list[dict]) -> None:
    out = _ok(_run(sample, "sql", TOP5, "-f", "ndjson")).stdout
    assert [json.loads(line) for line in out.splitlines()] == top5


def test_sql_markdown(sample: tuple[str, str], top5: list[dict]) -> None:
    lines = _ok(_run(sample, "sql", TOP5, "-f", "markdown")).stdout.strip().splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert cells[0] == ["media_id", "file_size", "uniqueness_score"]
    assert set(lines[1]) <= set("|-: ")
    assert [c[0] for c in cells[2:]] == [r["media_id"] for r in top5]
    assert [int(c[1]) for c in cells[2:]] == [r["file_size"] for r in top5]


def test_sql_table(sample: tuple[str, str], top5: list[dict]) -> None:
    out = _ok(_run(sample, "sql", TOP5, "-f", "table")).stdout
    for row in top5:
        assert str(row["media_id"]) in out
        assert str(row["file_size"]) in out


def test_sql_parquet_to_file(sample: tuple[str, str], top5: list[dict], tmp_path: Path) -> None:
    target = tmp_path / "top.parquet"
    result = _ok(_run(sample, "sql", TOP5, "-f", "parquet", "-o", str(target)))
    assert result.stdout == ""
    assert "Wrote 5 rows" in result.stderr
    assert pl.read_parquet(target).to_dicts() == top5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["top.parquet"]  # no temp left


def test_sql_parquet_to_a_pipe(sample: tuple[str, str], top5: list[dict]) -> None:
    data = _ok(_run(sample, "sql", TOP5, "-f", "parquet")).stdout_bytes
    assert data[:4] == b"PAR1"
    assert pl.read_parquet(io.BytesIO(data)).to_dicts() == top5


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("out.json", lambda text: len(json.loads(text)) == 5),
        ("out.ndjson", lambda text: len(text.splitlines()) == 5),
        ("out.csv", lambda text: len(text.splitlines()) == 6),
        ("out.md", lambda text: text.startswith("|")),
    ],
)
def test_sql_output_format_from_suffix(
    sample: tuple[str, str], tmp_path: Path, name: str, check: object
) -> None:
    target = tmp_path / name
    _ok(_run(sample, "sql", TOP5, "-o", str(target)))
    assert check(target.read_text())  # type: ignore[operator]


def test_sql_params(sample: tuple[str, str]) -> None:
    query = "SELECT count(*) AS n FROM issues WHERE issue_type = $t AND object_id IS NULL"
    out = _ok(_run(sample, "sql", query, "-p", "t", "blur")).stdout
    assert out.splitlines() == ["n", "4"]
    query = "SELECT count(*) AS n FROM labels WHERE source = $s AND category_name <> $c"
    out = _ok(_run(sample, "sql", query, "-p", "s", "User", "--param", "c", "no-such")).stdout
    assert out.splitlines() == ["n", "26"]
    # a value that looks like SQL stays a value
    out = _ok(_run(sample, "sql", "SELECT $v AS v", "-p", "v", "x'; DROP TABLE media; --")).stdout
    assert list(csv.DictReader(io.StringIO(out))) == [{"v": "x'; DROP TABLE media; --"}]


@pytest.mark.parametrize("flag", ["--overwrite", "--force"])  # --force: the hidden alias
def test_sql_output_refuses_to_overwrite(
    sample: tuple[str, str], tmp_path: Path, flag: str
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("precious\n")
    before = target.stat().st_mtime_ns
    line = _error_line(_run(sample, "sql", TOP5, "-o", str(target)))
    assert str(target) in line and "pass --overwrite to replace it" in line
    assert target.read_text() == "precious\n"
    assert target.stat().st_mtime_ns == before
    _ok(_run(sample, "sql", TOP5, "-o", str(target), flag))
    assert target.read_text().startswith("media_id,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_sql_output_follows_the_umask(sample: tuple[str, str], tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _ok(_run(sample, "sql", TOP5, "-o", str(tmp_path / "out.csv")))
        _ok(_run(sample, "convert", "-o", str(tmp_path / "tables")))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o644
    for path in (tmp_path / "tables").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_sql_bad_query(sample: tuple[str, str]) -> None:
    line = _error_line(_run(sample, "sql", "SELEC * FROM media"))
    assert "syntax error" in line


def test_sql_unknown_table_lists_the_tables(sample: tuple[str, str]) -> None:
    line = _error_line(_run(sample, "sql", "SELECT * FROM medias"))
    assert "medias" in line
    for table in TABLES:
        assert table in line


@pytest.mark.parametrize(
    "args",
    [
        ["SELECT $missing"],
        ["SELECT 1", "-p", "unused", "1"],
        ["SELECT no_such_column FROM media"],
    ],
    ids=["unbound", "extra-param", "unknown-column"],
)
def test_sql_errors_are_one_line(sample: tuple[str, str], args: list[str]) -> None:
    _error_line(_run(sample, "sql", *args))


def test_sql_unknown_format_is_a_usage_error(sample: tuple[str, str]) -> None:
    result = _run(sample, "sql", "SELECT 1", "-f", "xml")
    assert result.exit_code == 2


# --- convert -----------------------------------------------------------------------------


def test_convert(sample: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "tables"
    result = _ok(_run(sample, "convert", "-o", str(out)))
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    assert result.stdout.splitlines() == [str(out / f"{t}.parquet") for t in TABLES]
    for table, count in SAMPLE_COUNTS.items():
        assert pl.read_parquet(out / f"{table}.parquet").height == count, table
    media = pl.read_parquet(out / "media.parquet")
    assert media["image_path"].null_count() == 0
    assert media["file_size"].dtype == pl.Int64


def test_convert_refuses_existing_files(sample: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "tables"
    out.mkdir()
    (out / "labels.parquet").write_text("precious")
    line = _error_line(_run(sample, "convert", "-o", str(out)))
    assert "labels.parquet" in line and "pass --overwrite" in line
    assert sorted(p.name for p in out.iterdir()) == ["labels.parquet"]
    assert (out / "labels.parquet").read_text() == "precious"
    _ok(_run(sample, "convert", "-o", str(out), "--overwrite"))
    assert pl.read_parquet(out / "labels.parquet").height == 286
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# --- options shared by the query commands ------------------------------------------------


def test_refresh_and_quiet(sample: tuple[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = ["sql", sample[0], "SELECT count(*) AS n FROM media", "--cache-dir", str(cache)]
    _ok(CliRunner().invoke(main, base))
    builds = sorted(cache.rglob("manifest.json"))
    _ok(CliRunner().invoke(main, base))
    assert sorted(cache.rglob("manifest.json")) == builds
    result = _ok(CliRunner().invoke(main, [*base, "--refresh", "--quiet"]))
    rebuilt = sorted(cache.rglob("manifest.json"))
    assert len(rebuilt) == 1 and rebuilt != builds
    assert result.stdout.splitlines() == ["n", "46"]
    assert result.stderr == ""


# --- help, entry points, imports ---------------------------------------------------------


def _commands() -> list[str]:
    assert isinstance(main, click.Group)
    return sorted(main.all_commands)


def test_help_examples_name_real_sample_paths() -> None:
    texts = [_ok(CliRunner().invoke(main, ["--help"])).stdout]
    texts += [_ok(CliRunner().invoke(main, [n, "--help"])).stdout for n in _commands()]
    paths = {p for text in texts for p in re.findall(r"sample_data/[\w./-]*\w", text)}
    assert paths
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vlanalyze", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "sql" in result.stdout


def test_import_is_cheap() -> None:
    code = (
        "import sys, vlanalyze\n"
        "heavy = ['polars', 'duckdb', 'requests', 'click', 'rich', 'pyarrow']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_library_does_not_load_the_cli(tmp_path: Path) -> None:
    metadata = REPO / "sample_data" / "export-json" / "metadata.json"
    code = (
        "import sys, vlanalyze\n"
        f"ex = vlanalyze.open_export({str(metadata)!r}, cache_dir={str(tmp_path / 'c')!r})\n"
        "ex.sql('SELECT count(*) FROM media'); ex.info; ex.close()\n"
        "print([m for m in ('click', 'rich') if m in sys.modules])\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_reader_closing_the_pipe_stops_quietly(sample_json_copy: Path, tmp_path: Path) -> None:
    """`vlanalyze sql ... | head -1`: no traceback when head goes away."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vlanalyze",
            "sql",
            str(sample_json_copy),
            "--cache-dir",
            str(tmp_path / "cache"),
            "SELECT range AS n FROM range(3000000)",
            "-f",
            "csv",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"n\n"
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in stderr
