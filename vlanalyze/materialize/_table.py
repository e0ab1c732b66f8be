"""A result as a text table for a screen: the first rows, columns fitted to a width.

Like the DuckDB shell: at most ``max_rows`` rows are shown, the rest are only counted
(batch by batch, never held), and a footer says how many there were; columns are
shortened, then left out from the middle, to fit ``width`` characters. Nothing here
prints: the caller passes the stream, the width and the row limit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl

MAX_CELL = 40  # widest a column gets, however long its values
SHORT_CELL = 16  # columns are shortened to this before any is left out
MIN_CELL = 6  # and to this, when even one column does not fit
ELLIPSIS = "…"


@dataclass
class _Column:
    name: str
    dtype: str
    cells: list[str]
    numeric: bool = False

    @property
    def natural(self) -> int:
        return min(MAX_CELL, max(_width(self.name), len(self.dtype), *map(_width, self.cells)))


def render_table(
    batches: Iterable[pl.DataFrame],
    out: BinaryIO,
    *,
    max_rows: int | None = 40,
    width: int | None = None,
) -> int:
    """Write the first ``max_rows`` rows of ``batches`` as a table ``width`` characters wide.

    Args:
        batches: The result, in pieces.
        out: The binary stream to write to.
        max_rows: Show at most this many rows (None: all); the rest are counted.
        width: Fit the table in this many characters (None: no limit).

    Returns:
        The number of rows of the result (shown or not).
    """
    shown: list[pl.DataFrame] = []
    total = have = 0
    for df in batches:
        if not shown or max_rows is None or have < max_rows:
            take = df if max_rows is None else df.head(max(max_rows - have, 0))
            shown.append(take)
            have += take.height
        total += df.height
    head = pl.concat(shown) if shown else pl.DataFrame()
    if not head.columns:  # a statement without a result
        out.write(b"(no result)\n")
        return total
    columns = [_column(head, name) for name in head.columns]
    lines, hidden = _layout(columns, head.height, width)
    notes = []
    if total > head.height:
        more = total - head.height
        notes.append(f"{ELLIPSIS} {more:,} more row{'s' if more != 1 else ''}")
    if hidden:
        notes.append(f"{len(hidden)} column{'s' if len(hidden) != 1 else ''} not shown")
    if notes:
        lines.append(", ".join(notes) + " (use --format csv or -o FILE for all)")
    out.write(("\n".join(lines) + "\n").encode())
    return total


def _column(df: pl.DataFrame, name: str) -> _Column:
    series = df[name]
    try:
        if isinstance(series.dtype, (pl.List, pl.Struct, pl.Array)):
            raise pl.exceptions.InvalidOperationError  # polars casts these to text badly
        text = series.cast(pl.String).to_list()
    except pl.exceptions.PolarsError:  # nested, binary, maps: as Python shows them
        text = [None if v is None else str(v) for v in series.to_list()]
    cells = ["NULL" if v is None else _one_line(v) for v in text]
    dtype = str(series.dtype).split("(", 1)[0].lower()  # "datetime", not its time unit
    return _Column(name, dtype, cells, series.dtype.is_numeric())


def _one_line(value: str) -> str:
    return value.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (CJK) characters two, combining none."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` cut (with "…") or padded to exactly ``width`` terminal columns."""
    if _width(text) > width:
        while _width(text) > width - 1:
            text = text[:-1]
        text += ELLIPSIS
    pad = " " * (width - _width(text))
    return pad + text if right else text + pad


def _shrink(widths: list[int], width: int, *, floor: int) -> None:
    """Narrow the widest columns, one character at a time, down to ``floor``."""
    while sum(widths) + 3 * len(widths) + 1 > width and max(widths, default=0) > floor:
        widest = widths.index(max(widths))
        widths[widest] -= 1


def _layout(columns: list[_Column], rows: int, width: int | None) -> tuple[list[str], list[str]]:
    """The table's lines, and the names of the columns left out to fit ``width``."""
    widths = [c.natural for c in columns]
    hidden: list[str] = []
    if width is not None:
        # Shorten the widest columns to a readable floor, then leave columns out from
        # the middle (as the DuckDB shell does), then shorten below the floor.
        _shrink(widths, width, floor=SHORT_CELL)
        # Once a column is left out, a narrow "…" column (4 characters) takes its place.
        while len(columns) > 1 and sum(widths) + 3 * len(widths) + 1 + 4 * bool(hidden) > width:
            middle = len(columns) // 2
            hidden.append(columns.pop(middle).name)
            widths.pop(middle)
        _shrink(widths, width - 4 * bool(hidden), floor=MIN_CELL)
    if hidden:  # a narrow column of "…" where the left-out columns were
        middle = (len(columns) + 1) // 2
        columns.insert(middle, _Column(ELLIPSIS, "", [ELLIPSIS] * rows))
        widths.insert(middle, 1)

    def line(cells: list[str], left: str, sep: str, right: str) -> str:
        return left + sep.join(cells) + right

    bar = ["─" * (w + 2) for w in widths]
    lines = [
        line(bar, "┌", "┬", "┐"),
        line([f" {_fit(c.name, w)} " for c, w in zip(columns, widths, strict=True)], *"│││"),
        line([f" {_fit(c.dtype, w)} " for c, w in zip(columns, widths, strict=True)], *"│││"),
        line(bar, "├", "┼", "┤"),
    ]
    for i in range(rows):
        cells = [
            f" {_fit(c.cells[i], w, right=c.numeric)} "
            for c, w in zip(columns, widths, strict=True)
        ]
        lines.append(line(cells, "│", "│", "│"))
    lines.append(line(bar, "└", "┴", "┘"))
    return lines, hidden
