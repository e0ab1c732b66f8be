"""The one-row ``info`` table: the export's ``info`` block, its form and its source.

Known timestamps become timestamps and ``total_media_items`` an integer; any other
value that is not a scalar is kept as JSON text, so no key is dropped.
"""

from __future__ import annotations

import json
import math
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from vlanalyze.query._sql import connect, quote_ident, quote_literal

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
    """Write ``out/info/part-00000.parquet`` (by DuckDB: opening a JSON export imports
    no pyarrow). Names that differ only in case keep both values (the second is written
    as ``<name>_1``)."""
    row = info_row(top_level, fmt=fmt, source=source)
    columns, values = [], []
    for i, (key, value) in enumerate(row.items()):
        cast, typed = _typed(value)
        columns.append(f"${i + 1}{cast} AS {quote_ident(key.replace(chr(0), chr(0xFFFD)))}")
        values.append(typed)
    (out / "info").mkdir(exist_ok=True)
    target = quote_literal((out / "info" / "part-00000.parquet").as_posix())
    with closing(connect()) as con:
        con.execute(f"COPY (SELECT {', '.join(columns)}) TO {target} (FORMAT parquet)", values)


def _typed(value: Any) -> tuple[str, Any]:
    """The SQL cast of an info value, and the value to bind."""
    if value is None:
        return "", None
    if isinstance(value, bool):
        return "::BOOLEAN", value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return "::BIGINT", value
    if isinstance(value, float) and math.isfinite(value):
        return "::DOUBLE", value
    if isinstance(value, datetime):
        return ("::TIMESTAMP" if value.tzinfo is None else "::TIMESTAMPTZ"), value
    return "::VARCHAR", str(value)
