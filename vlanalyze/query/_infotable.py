"""The one-row ``info`` table: the export's ``info`` block, its form and its source.

Known timestamps become timestamps and ``total_media_items`` an integer; any other
value that is not a scalar is kept as JSON text, so no key is dropped.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson
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
    """Write ``out/info/part-00000.parquet``.

    The row goes through pyarrow's JSON reader with an explicit schema: building arrays
    from Python values would import pandas, where installed (a fifth of a second).
    """
    fields, values = [], {}
    for key, value in info_row(top_level, fmt=fmt, source=source).items():
        kind, values[key] = _typed(value)
        fields.append(pa.field(key, kind))
    options = pajson.ParseOptions(explicit_schema=pa.schema(fields))
    table = pajson.read_json(io.BytesIO(json.dumps(values).encode()), parse_options=options)
    (out / "info").mkdir(exist_ok=True)
    pq.write_table(table, out / "info" / "part-00000.parquet")


def _typed(value: Any) -> tuple[pa.DataType, Any]:
    """The Arrow type of an info value, and the value as JSON gives it to that type."""
    if value is None:
        return pa.null(), None
    if isinstance(value, bool):
        return pa.bool_(), value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return pa.int64(), value
    if isinstance(value, float) and math.isfinite(value):
        return pa.float64(), value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return pa.timestamp("us"), value.isoformat(sep=" ")
        utc = value.astimezone(UTC).replace(tzinfo=None)
        return pa.timestamp("us", tz="UTC"), utc.isoformat(sep=" ")
    return pa.string(), str(value)
