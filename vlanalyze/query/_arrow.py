"""SQL results as polars frames: the Arrow types polars cannot import, made importable.

Loaded only when a result becomes a DataFrame (the shell's CSV path never loads it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa


def to_frame(table: pa.Table) -> pl.DataFrame:
    import polars as pl
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_interval(field.type):  # polars cannot import Arrow intervals
            table = table.set_column(i, field.name, interval_column(table.column(i)))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def interval_column(column: pa.ChunkedArray) -> pa.Array:
    """An SQL INTERVAL column as durations, or as ISO 8601 text where it counts months.

    A month has no fixed length, so ``INTERVAL 1 MONTH`` cannot be a duration.
    """
    import pyarrow as pa

    values = column.to_pylist()
    if all(v is None or v.months == 0 for v in values):
        micros = [
            None if v is None else v.days * 86_400_000_000 + v.nanoseconds // 1000 for v in values
        ]
        return pa.array(micros, pa.duration("us"))
    return pa.array(
        [None if v is None else f"P{v.months}M{v.days}DT{v.nanoseconds / 1e9:g}S" for v in values],
        pa.string(),
    )
