"""The shell's short queries (issue #10, part 2): ``vlanalyze sql`` on a cached export
answers CSV, TSV, JSON, NDJSON and Parquet with DuckDB alone (polars, pyarrow and numpy
are never imported), streams through a pipe DuckDB writes into, and keeps every promise
of the other outputs: the same rows, nested values as JSON text, atomic files, a shell's
``>>`` appended to, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from conftest import SAMPLE_COUNTS, error_line

import vlanalyze as vla
from vlanalyze.cli import main
from vlanalyze.query._copyout import tables_named
from vlanalyze.query._schema import TABLES

REPO = Path(__file__).resolve().parents[1]
TOP5 = (
    "SELECT media_id, file_size, uniqueness_score FROM media "
    "ORDER BY uniqueness_score DESC, media_id LIMIT 5"
)
HEAVY = ("polars", "pyarrow", "numpy", "pandas", "rich")
# Runs the CLI in a fresh interpreter, then says which heavy modules it loaded.
REPORT_MODULES = """
import atexit, sys
atexit.register(lambda: print("LOADED", sorted({m.split(".")[0] for m in sys.modules}
                                                & set(HEAVY)), file=sys.stderr))
from vlanalyze.cli import main
main(sys.argv[1:], prog_name="vlanalyze")
"""


@pytest.fixture
def bare(tmp_path: Path, sample_export: Path) -> tuple[Path, Path]:
    """The sample's metadata.json alone (no images/), and its cache, built."""
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copy2(sample_export / "metadata.json", folder / "metadata.json")
    cache = tmp_path / "cache"
    vla.open_export(folder, cache_dir=cache).close()
    return folder, cache


def _cli(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    code = f"HEAVY = {HEAVY!r}\n{REPORT_MODULES}"
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args], cwd=REPO, timeout=120, check=False, **kwargs
    )


def _loaded(stderr: bytes) -> list[str]:
    line = [x for x in stderr.decode().splitlines() if x.startswith("LOADED ")][-1]
    return list(json.loads(line.removeprefix("LOADED ").replace("'", '"')))


def _expected(folder: Path, cache: Path) -> pl.DataFrame:
    with vla.open_export(folder, cache_dir=cache) as ex:
        return ex.sql(TOP5)


def _read(data: bytes, fmt: str) -> pl.DataFrame:
    if fmt in ("csv", "tsv"):
        return pl.read_csv(io.BytesIO(data), separator="," if fmt == "csv" else "\t")
    if fmt == "ndjson":
        return pl.read_ndjson(io.BytesIO(data))
    if fmt == "json":
        return pl.DataFrame(json.loads(data))
    return pl.read_parquet(io.BytesIO(data))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "ndjson", "parquet"])
def test_sql_loads_neither_polars_nor_pyarrow(bare: tuple[Path, Path], fmt: str) -> None:
    folder, cache = bare
    args = ["sql", str(folder), "--cache-dir", str(cache), TOP5, "--format", fmt]
    result = _cli(args, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert _loaded(result.stderr) == []
    got = _read(result.stdout, fmt)
    assert got.to_dicts() == _expected(folder, cache).to_dicts()


def test_info_loads_neither_polars_nor_pyarrow(bare: tuple[Path, Path]) -> None:
    folder, cache = bare
    result = _cli(["info", str(folder), "--cache-dir", str(cache), "--json"], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert _loaded(result.stderr) == []
    data = json.loads(result.stdout)
    assert data["counts"] == SAMPLE_COUNTS
    assert data["images"]["missing"] == SAMPLE_COUNTS["media"]


def test_a_shell_append_keeps_what_the_file_held(bare: tuple[Path, Path], tmp_path: Path) -> None:
    """`vlanalyze sql ... >> log.csv`: DuckDB never reopens (and truncates) the file."""
    folder, cache = bare
    log = tmp_path / "log.csv"
    log.write_text("precious\n")
    with log.open("ab") as out:
        args = ["sql", str(folder), "--cache-dir", str(cache), "SELECT 1 AS n", "-f", "csv"]
        assert _cli(args, stdout=out, stderr=subprocess.PIPE).returncode == 0
    assert log.read_text() == "precious\nn\n1\n"


def _run(bare: tuple[Path, Path], *args: str) -> Result:
    folder, cache = bare
    return CliRunner().invoke(main, ["sql", str(folder), "--cache-dir", str(cache), *args])


def test_nested_values_are_json_text_in_csv(bare: tuple[Path, Path]) -> None:
    query = "SELECT [1, 2] AS \"a.b\", {'a': 'x'} AS s, MAP {'k': 2} AS m, 3 AS n"
    result = _run(bare, query, "-f", "csv")
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert {k: json.loads(v) for k, v in row.items()} == {
        "a.b": [1, 2],
        "s": {"a": "x"},
        "m": {"k": 2},
        "n": 3,
    }


def test_every_table_is_there_for_a_query_that_lists_them(bare: tuple[Path, Path]) -> None:
    result = _run(bare, "SHOW TABLES", "-f", "csv")
    assert result.exit_code == 0, result.output
    names = {r["name"] for r in csv.DictReader(io.StringIO(result.stdout))}
    assert names == {*TABLES, "image_paths"}


def test_several_statements_show_the_last_result(bare: tuple[Path, Path]) -> None:
    result = _run(bare, "CREATE TABLE t AS SELECT 1 AS n; SELECT n + 1 AS m FROM t", "-f", "csv")
    assert (result.exit_code, result.stdout) == (0, "m\n2\n")


def test_params_and_a_large_result_stream(bare: tuple[Path, Path]) -> None:
    query = "SELECT range AS n, $tag AS tag FROM range(300000)"
    result = _run(bare, query, "-p", "tag", "x'y", "-f", "ndjson")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 300_000 and json.loads(lines[-1]) == {"n": 299_999, "tag": "x'y"}


def test_empty_result_keeps_its_columns(bare: tuple[Path, Path]) -> None:
    csv_out = _run(bare, "SELECT media_id, uniqueness_score FROM media WHERE false", "-f", "csv")
    assert csv_out.stdout == "media_id,uniqueness_score\n"
    json_out = _run(bare, "SELECT media_id FROM media WHERE false", "-f", "json")
    assert json.loads(json_out.stdout) == []


def test_a_failing_query_is_one_line_and_leaves_no_file(
    bare: tuple[Path, Path], tmp_path: Path
) -> None:
    target = tmp_path / "out.parquet"
    result = _run(bare, "SELECT CAST('x' AS INTEGER) FROM media", "-o", str(target))
    assert result.exit_code == 1
    assert error_line(result).startswith("Error: ")
    assert not target.exists() and os.listdir(tmp_path).count("out.parquet") == 0


def test_parquet_file_reads_back(bare: tuple[Path, Path], tmp_path: Path) -> None:
    target = tmp_path / "top.parquet"
    result = _run(bare, TOP5, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "Wrote 5 rows" in result.stderr
    assert pl.read_parquet(target).to_dicts() == _expected(*bare).to_dicts()


def test_tables_named_in_a_query() -> None:
    query = 'SELECT * FROM "Media" m JOIN labels USING (media_id) -- issues'
    assert tables_named(query, TABLES) == ["media", "labels", "issues"]
    assert tables_named("SELECT 1", TABLES) == []
    for listing in ("SHOW TABLES", "DESCRIBE media", "SELECT * FROM duckdb_tables()"):
        assert tables_named(listing, TABLES) is None


def test_intervals_are_written_as_everywhere_else(bare: tuple[Path, Path]) -> None:
    query = "SELECT INTERVAL 90 MINUTE AS d, INTERVAL 2 MONTH + INTERVAL 1 DAY AS m"
    result = _run(bare, query, "-f", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["d,m", "PT1H30M,P2M1DT0S"]


def test_image_paths_is_there_without_images(bare: tuple[Path, Path]) -> None:
    result = _run(bare, "SELECT count(*) AS n FROM image_paths", "-f", "csv")
    assert (result.exit_code, result.stdout) == (0, "n\n0\n")


def test_library_calls(bare: tuple[Path, Path]) -> None:
    folder, cache = bare
    with vla.open_export(folder, cache_dir=cache) as ex:
        out = io.BytesIO()
        assert ex.copy_sql("SELECT media_id FROM media", out, fmt="ndjson") == 46
        assert len(out.getvalue().splitlines()) == SAMPLE_COUNTS["media"]
        assert ex.sql_rows("SELECT count(*) AS n FROM labels") == [{"n": SAMPLE_COUNTS["labels"]}]
        con = ex.duckdb(tables=["labels"])
        try:
            assert [r[0] for r in con.execute("SHOW TABLES").fetchall()] == ["labels"]
        finally:
            con.close()
        with pytest.raises(ValueError, match="no table named 'nope'"):
            ex.duckdb(tables=["nope"])
        with pytest.raises(vla.QueryError):
            ex.copy_sql("SELECT * FROM nope", io.BytesIO(), fmt="csv")
