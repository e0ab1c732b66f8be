"""What `vlanalyze sql` shows in a shell: a table that fits, SQL from files and stdin,
several statements, and the counts it reports."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from conftest import SAMPLE_EXPORT

from vlanalyze.cli import main
from vlanalyze.materialize._output import render


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("shell") / "cache")


def _sql(cache: str, *args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(
        main, ["sql", str(SAMPLE_EXPORT), "--cache-dir", cache, "-q", *args], input=stdin
    )
    assert result.exit_code == 0, result.output
    return result


def _table_rows(text: str) -> list[str]:
    """The data lines of a rendered table (between the header rule and the bottom)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("├"))
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return lines[start + 1 : end]


def test_table_shows_the_first_rows_and_counts_the_rest(cache: str) -> None:
    out = _sql(cache, "SELECT range AS n FROM range(3000000)", "-f", "table").stdout
    rows = _table_rows(out)
    assert [int(r.strip("│ ")) for r in rows] == list(range(40))
    assert out.splitlines()[-1] == ("… 2,999,960 more rows (use --format csv or -o FILE for all)")
    assert len(out.splitlines()) == 40 + 6


def test_table_max_rows(cache: str) -> None:
    out = _sql(cache, "SELECT * FROM range(5)", "-f", "table", "--max-rows", "4").stdout
    assert len(_table_rows(out)) == 4 and out.splitlines()[-1].startswith("… 1 more row ")
    everything = _sql(cache, "SELECT * FROM range(50)", "-f", "table", "--max-rows", "0").stdout
    assert len(_table_rows(everything)) == 50 and "more row" not in everything
    exact = _sql(cache, "SELECT * FROM range(40)", "-f", "table").stdout
    assert len(_table_rows(exact)) == 40 and "more row" not in exact


def _batches(n_batches: int, rows: int) -> Iterator[pl.DataFrame]:
    for b in range(n_batches):
        yield pl.DataFrame({"n": range(b * rows, (b + 1) * rows)})


def test_table_counts_batches_without_holding_them() -> None:
    seen: list[int] = []

    def batches() -> Iterator[pl.DataFrame]:
        for df in _batches(200, 5000):
            seen.append(df.height)
            yield df

    out = io.BytesIO()
    assert render(batches(), "table", out, max_rows=10) == 1_000_000
    assert len(seen) == 200
    assert (
        out.getvalue()
        .decode()
        .endswith("… 999,990 more rows (use --format csv or -o FILE for all)\n")
    )


@pytest.mark.parametrize("width", [60, 100, 200])
def test_table_fits_the_width(width: int) -> None:
    wide = pl.DataFrame({f"column_{i}": [f"value {i} " * 10, None] for i in range(30)})
    out = io.BytesIO()
    render([wide], "table", out, max_rows=40, width=width)
    lines = out.getvalue().decode().splitlines()
    assert all(len(line) <= width for line in lines), max(map(len, lines))
    assert "column_0" in lines[1] and "column_29" in lines[1]  # first and last are kept
    assert lines[-1].endswith("columns not shown (use --format csv or -o FILE for all)")
    assert "NULL" in lines[5]


def test_table_without_a_width_keeps_every_column() -> None:
    wide = pl.DataFrame({f"c{i}": ["x" * 100] for i in range(30)})
    out = io.BytesIO()
    render([wide], "table", out)
    text = out.getvalue().decode()
    assert all(f"c{i} " in text for i in range(30)) and "not shown" not in text


def test_table_of_an_empty_result_names_its_columns(cache: str) -> None:
    out = _sql(cache, "SELECT media_id, file_path FROM media WHERE false", "-f", "table").stdout
    assert "media_id" in out and "file_path" in out and _table_rows(out) == []


# --- SQL from a file, stdin, several statements -----------------------------------------


def test_sql_from_stdin(cache: str) -> None:
    out = _sql(cache, "-", "-f", "json", stdin="SELECT count(*) AS n FROM media\n").stdout
    assert json.loads(out) == [{"n": 46}]


def test_sql_from_a_file(cache: str, tmp_path: Path) -> None:
    query = tmp_path / "q.sql"
    query.write_text("-- how many\nSELECT count(*) AS n FROM media WHERE width > $w;\n")
    for args in (["@" + str(query)], ["--file", str(query)]):
        out = _sql(cache, *args, "-p", "w", "400", "-f", "json").stdout
        assert json.loads(out) == [{"n": 18}]


def test_sql_file_errors(cache: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["sql", str(SAMPLE_EXPORT), "--cache-dir", cache, "-q"]
    missing = runner.invoke(main, [*base, "@" + str(tmp_path / "nope.sql")])
    assert missing.exit_code == 2 and "nope.sql" in missing.stderr
    (tmp_path / "empty.sql").write_text("  \n")
    empty = runner.invoke(main, [*base, "--file", str(tmp_path / "empty.sql")])
    assert empty.exit_code == 2 and "holds no SQL" in empty.stderr
    both = runner.invoke(main, [*base, "SELECT 1", "--file", str(tmp_path / "empty.sql")])
    assert both.exit_code == 2 and "not both" in both.stderr
    neither = runner.invoke(main, base)
    assert neither.exit_code == 2 and "@FILE" in neither.stderr


def test_several_statements_run_in_order_and_show_the_last(cache: str) -> None:
    script = (
        "CREATE TEMP TABLE wide AS SELECT media_id FROM media WHERE width > 400;\n"
        "INSERT INTO wide SELECT 'extra';\n"
        "SELECT count(*) AS n FROM wide;\n"
    )
    out = _sql(cache, "-", "-f", "json", stdin=script).stdout
    assert json.loads(out) == [{"n": 19}]
    assert "Several statements" in CliRunner().invoke(main, ["sql", "--help"]).stdout


# --- counts in words ----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "words"), [(1, "Wrote 1 row to"), (2, "Wrote 2 rows to")])
def test_wrote_n_rows(cache: str, tmp_path: Path, n: int, words: str) -> None:
    target = tmp_path / "out.csv"
    result = _sql(cache, f"SELECT * FROM range({n})", "-o", str(target))
    assert result.stderr.startswith(words)


def test_table_shows_every_type(cache: str) -> None:
    query = (
        "SELECT '\\xff'::BLOB AS b, DATE '2024-01-01' AS d, [1, 2] AS l, {'a': 1} AS s, "
        "MAP {'k': 1} AS m, 1.5::DECIMAL(4, 2) AS dec, 'a\nb' AS nl, NULL AS n"
    )
    (row,) = _table_rows(_sql(cache, query, "-f", "table").stdout)
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells == [
        "b'\\xff'",
        "2024-01-01",
        "[1, 2]",
        "{'a': 1}",
        "{'k': 1}",
        "1.50",
        "a b",
        "NULL",
    ]


def test_table_of_no_result_says_so() -> None:
    out = io.BytesIO()
    assert render([], "table", out) == 0
    assert out.getvalue() == b"(no result)\n"


def test_table_aligns_wide_characters() -> None:
    df = pl.DataFrame(
        {
            "label": ["猫", "chat", "猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫猫"],
            "n": [1, 22, 333],
        }
    )
    out = io.BytesIO()
    render([df], "table", out, width=40)
    lines = out.getvalue().decode().splitlines()

    def columns(line: str) -> int:
        return sum(2 if "\u4e00" <= c <= "\u9fff" else 1 for c in line)

    assert len({columns(line) for line in lines}) == 1  # every line as wide on screen
    assert columns(lines[0]) <= 40
    assert "…" in lines[-2]  # the long label was cut
