"""Streaming output: a result written in batches reads back as the same rows, in
every format, and an empty result still says which columns it has."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import vlanalyze as vla
from vlanalyze.errors import MaterializeError
from vlanalyze.materialize._output import render, write_file

QUERY = "SELECT media_id, file_path, uniqueness_score FROM media ORDER BY media_id"


@pytest.fixture
def export(sample_json_copy: Path, tmp_path: Path) -> Iterator[vla.Export]:
    with vla.open_export(sample_json_copy, cache_dir=tmp_path / "cache") as ex:
        yield ex


def _read(data: bytes, fmt: str) -> pl.DataFrame:
    if fmt == "csv":
        return pl.read_csv(io.BytesIO(data))
    if fmt == "tsv":
        return pl.read_csv(io.BytesIO(data), separator="\t")
    if fmt == "ndjson":
        return pl.read_ndjson(io.BytesIO(data))
    if fmt == "json":
        return pl.DataFrame(json.loads(data))
    return pl.read_parquet(io.BytesIO(data))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "ndjson", "parquet"])
def test_batches_read_back_as_one_result(export: vla.Export, fmt: str) -> None:
    whole = export.sql(QUERY)
    batches = list(export.sql_batches(QUERY, rows=7))
    assert len(batches) == -(-whole.height // 7) > 1
    out = io.BytesIO()
    assert render(batches, fmt, out) == whole.height
    assert_frame_equal(_read(out.getvalue(), fmt), whole, check_dtypes=False)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_empty_result_keeps_its_columns(export: vla.Export, fmt: str) -> None:
    batches = list(export.sql_batches(QUERY.replace("ORDER BY", "WHERE false ORDER BY")))
    out = io.BytesIO()
    assert render(batches, fmt, out) == 0
    if fmt == "csv":
        assert out.getvalue().decode().strip() == "media_id,file_path,uniqueness_score"
    elif fmt == "json":
        assert json.loads(out.getvalue()) == []
    else:
        columns = pl.read_parquet(io.BytesIO(out.getvalue())).columns
        assert columns == ["media_id", "file_path", "uniqueness_score"]


def test_write_file_is_atomic_and_refuses_to_overwrite(export: vla.Export, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("precious\n")
    with pytest.raises(MaterializeError, match="already exists"):
        write_file(export.sql_batches(QUERY), "csv", target)
    assert target.read_text() == "precious\n"

    def failing() -> Iterator[pl.DataFrame]:
        yield export.sql(QUERY)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_file(failing(), "csv", target, overwrite=True)
    assert target.read_text() == "precious\n"  # a half-written result never replaces it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []
    assert write_file(export.sql_batches(QUERY), "csv", target, overwrite=True) == 46


def test_cli_offers_exactly_the_library_formats() -> None:
    from vlanalyze.cli.query_cmds import FORMATS as CLI_FORMATS
    from vlanalyze.materialize._output import FORMATS

    assert CLI_FORMATS == FORMATS


def test_nested_values_become_json_text_in_csv(export: vla.Export) -> None:
    batches = export.sql_batches("SELECT [1, 2] AS l, {'a': 'x'} AS s, 3 AS n")
    out = io.BytesIO()
    render(batches, "csv", out)
    row = pl.read_csv(io.BytesIO(out.getvalue())).row(0)
    assert (json.loads(row[0]), json.loads(row[1]), row[2]) == ([1, 2], {"a": "x"}, 3)


def test_sql_intervals_become_durations_or_iso_text(export: vla.Export) -> None:
    query = "SELECT INTERVAL 90 MINUTE AS d, INTERVAL 2 MONTH + INTERVAL 1 DAY AS m"
    frame = export.sql(query)
    assert frame.schema["d"] == pl.Duration("us")
    assert frame.row(0) == (dt.timedelta(minutes=90), "P2M1DT0S")
    out = io.BytesIO()
    render(export.sql_batches(query), "csv", out)
    assert out.getvalue().decode().splitlines() == ["d,m", "PT1H30M,P2M1DT0S"]
