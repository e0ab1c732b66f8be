"""The format knowledge shared by fetch and query: reading an export's info block cheaply."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlanalyze._metadata import read_export_info, sniff_format

INFO = {"dataset": "D", "export_time": "2025-01-01T00:00:00.000001"}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"info": INFO, "media_items": []}),
        "\ufeff" + json.dumps({"other": [1, {"info": "}"}], "info": INFO, "media_items": [{}]}),
        json.dumps({"pad": "x" * 300_000, "n": 12345, "info": INFO, "media_items": [{}] * 3}),
        '{\n  "info" : ' + json.dumps(INFO, indent=4) + ',\n  "media_items": [',  # truncated after
    ],
    ids=["plain", "bom-and-decoy", "long-head", "items-unreadable"],
)
def test_json_info_from_the_head(tmp_path: Path, text: str) -> None:
    (tmp_path / "metadata.json").write_text(text, encoding="utf-8")
    assert read_export_info(tmp_path) == INFO
    assert read_export_info(tmp_path / "metadata.json") == INFO


@pytest.mark.parametrize(
    "text",
    ['{"media_items": [], "info": {"dataset": "late"}}', "{}", "[1, 2]", '{"info": 3}'],
    ids=["after-items", "empty", "array", "not-an-object"],
)
def test_json_without_a_readable_info_gives_empty(tmp_path: Path, text: str) -> None:
    (tmp_path / "metadata.json").write_text(text, encoding="utf-8")
    assert read_export_info(tmp_path) == {}


def test_broken_json_head_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text('{"info": {"a": 1,}}', encoding="utf-8")
    with pytest.raises(ValueError):
        read_export_info(tmp_path)


def test_parquet_info_and_sniffing(tmp_path: Path) -> None:
    table = pa.table({"media_id": ["m"]}).replace_schema_metadata({"info": json.dumps(INFO)})
    sub = tmp_path / "export"
    sub.mkdir()
    pq.write_table(table, sub / "metadata.parquet")
    assert read_export_info(tmp_path) == INFO  # found in a sub-folder too
    assert sniff_format(sub / "metadata.parquet") == "parquet"
    (tmp_path / "empty").mkdir()
    assert read_export_info(tmp_path / "empty") == {}
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    assert sniff_format(tmp_path / "x.bin") is None
