"""The one-row ``info`` table: the export's ``info`` block, its form and its source.

Known timestamps become timestamps and ``total_media_items`` an integer; any other
value that is not a scalar is kept as JSON text, so no key is dropped.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_TIMESTAMPS = ("export_time", "dataset_creation_time")


def info_row(top_level: dict[str, Any], *, fmt: str, source: str) -> dict[str, Any]:
    """The info table's single row, as plain Python values."""
    info = top_level.get("info")
    row: dict[str, Any] = dict(info) if isinstance(info, dict) else {}
    for key, value in top_level.items():  # unknown top-level keys, beside "info"
        if key != "info":
            row.setdefault(key, value)
    for key, value in list(row.items()):
        if key in _TIMESTAMPS and isinstance(value, str):
            row[key] = _timestamp(value)
        elif isinstance(value, (dict, list)):
            row[key] = json.dumps(value, sort_keys=True)
    row["format"] = fmt
    row["source_path"] = source
    return row


def _timestamp(text: str) -> datetime | str:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


def write_info_table(out: Path, top_level: dict[str, Any], *, fmt: str, source: str) -> None:
    """Write ``out/info/part-00000.parquet``."""
    row = info_row(top_level, fmt=fmt, source=source)
    columns = {}
    for key, value in row.items():
        try:
            columns[key] = pa.array([value])
        except (pa.ArrowException, TypeError, ValueError):
            columns[key] = pa.array([str(value)])
    (out / "info").mkdir(exist_ok=True)
    pq.write_table(pa.table(columns), out / "info" / "part-00000.parquet")
