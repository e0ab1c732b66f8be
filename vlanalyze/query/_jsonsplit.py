"""Split a huge ``metadata.json`` into batches of newline-delimited media items.

A Visual Layer JSON export is one object, ``{"info": {...}, "media_items": [...]}``, that
can be tens of gigabytes. ``json.load`` of it does not fit a laptop, and item-by-item
Python parsing is far slower than DuckDB. This module finds the byte range of every
media item with a vectorised structural scan (numpy over the raw bytes: quotes,
brackets, string state, depth) and hands out batches of items as NDJSON bytes, which
DuckDB then parses natively. Memory is bounded by the batch size.

It parses no item itself and knows nothing of the tidy tables; it only reports where
the structure of the file is broken (with the byte offset).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from vlanalyze.errors import ExportFormatError

DEFAULT_BATCH_BYTES = 48 << 20

_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPEN_OBJ, _CLOSE_OBJ, _OPEN_ARR, _CLOSE_ARR = 0x7B, 0x7D, 0x5B, 0x5D
_WHITESPACE = b" \t\r\n"

# One lookup gives each byte its class, so a single pass finds every interesting byte.
_CLASS = np.zeros(256, dtype=np.int8)
_CLASS[_QUOTE] = 3
_CLASS[_OPEN_OBJ] = _CLASS[_OPEN_ARR] = 1
_CLASS[_CLOSE_OBJ] = _CLASS[_CLOSE_ARR] = 2
_NEWLINES = bytes.maketrans(b"\r\n", b"  ")
_GAP_BYTES = np.frombuffer(b" \t\r\n,", dtype=np.uint8)

Array = npt.NDArray[np.int64]


@dataclass
class _Structure:
    """Structural characters outside strings: positions, bytes and depth after each."""

    pos: Array
    char: npt.NDArray[np.uint8]
    depth: Array
    quotes: Array = field(repr=False)


def _scan(buf: bytes | bytearray, start_depth: int) -> _Structure:
    """Index the structural bytes of ``buf``, which must start outside any string."""
    b = np.frombuffer(buf, dtype=np.uint8)
    cls = _CLASS[b]
    idx = np.flatnonzero(cls).astype(np.int64)
    kinds = cls[idx]
    is_quote = kinds == 3
    quote_pos = idx[is_quote]
    # A quote preceded by an odd run of backslashes is escaped: rare, checked one by one.
    maybe = quote_pos[(quote_pos > 0) & (b[np.maximum(quote_pos - 1, 0)] == _BACKSLASH)]
    if maybe.size:
        escaped = np.array([_is_escaped(buf, int(p)) for p in maybe], dtype=bool)
        if escaped.any():
            is_quote &= ~np.isin(idx, maybe[escaped])
            quote_pos = idx[is_quote]
    outside = (np.cumsum(is_quote) & 1) == 0
    keep = outside & ~is_quote
    pos = idx[keep]
    char = b[pos]
    delta = np.where(kinds[keep] == 1, 1, -1).astype(np.int64)
    depth = np.cumsum(delta) + start_depth
    return _Structure(pos=pos, char=char, depth=depth, quotes=quote_pos)


def _is_escaped(buf: bytes | bytearray, pos: int) -> bool:
    run = 0
    while pos - run - 1 >= 0 and buf[pos - run - 1] == _BACKSLASH:
        run += 1
    return run % 2 == 1


@dataclass
class ItemBatch:
    """A batch of media items as NDJSON, with where each item starts in the file."""

    ndjson: bytes
    offsets: list[int]  # file offset of each item's first byte
    count: int


class MediaItemSplitter:
    """Stream the ``media_items`` of a JSON export as NDJSON batches.

    Iterate it for :class:`ItemBatch` objects; afterwards :attr:`top_level` holds every
    other top-level key of the file (``info`` and any unknown key).
    """

    def __init__(self, fh: IO[bytes], *, name: str, batch_bytes: int | None = None) -> None:
        self._fh = fh
        self._name = name
        self._batch_bytes = batch_bytes or DEFAULT_BATCH_BYTES
        self._need_comma = False  # a comma must come before the next item
        self.top_level: dict[str, Any] = {}

    def __iter__(self) -> Iterator[ItemBatch]:
        header, buf, offset = self.read_header()
        trailer = yield from self._items(buf, offset)
        self.top_level = self._parse_top_level(header, trailer)

    def _error(self, what: str, offset: int) -> ExportFormatError:
        return ExportFormatError(
            f"{self._name}: {what} at byte {offset}",
            hint="the file is truncated or not a Visual Layer export; download it again",
        )

    def read_header(self) -> tuple[bytes, bytes, int]:
        """Read up to the ``[`` of ``media_items``; return header, rest of buffer, offset."""
        buf = self._fh.read(self._batch_bytes)
        first = buf.lstrip(_WHITESPACE + b"\xef\xbb\xbf")[:1]
        if first != b"{":
            what = "empty file" if not buf else f"expected a JSON object, found {first!r}"
            raise self._error(what, 0)
        while True:
            s = _scan(buf, 0)
            opens = np.flatnonzero((s.char == _OPEN_ARR) & (s.depth == 2))
            for i in opens:
                p = int(s.pos[i])
                if self._key_before(buf, s.quotes, p) == "media_items":
                    return buf[:p], buf[p + 1 :], p + 1
            if s.depth.size and s.depth[-1] == 0:
                raise self._error("no 'media_items' array in the top-level object", len(buf))
            more = self._fh.read(self._batch_bytes)
            if not more:
                raise self._error("file ends before 'media_items'", len(buf))
            buf += more

    @staticmethod
    def _key_before(buf: bytes, quotes: Array, p: int) -> str | None:
        k = int(np.searchsorted(quotes, p)) - 1
        if k < 1:
            return None
        close, open_ = int(quotes[k]), int(quotes[k - 1])
        if buf[close + 1 : p].strip(_WHITESPACE) != b":":
            return None
        return buf[open_ + 1 : close].decode("utf-8", "replace")

    def _items(self, buf: bytes, offset: int) -> Generator[ItemBatch, None, bytes]:
        """Yield batches of items; return the bytes after the closing ``]``."""
        while True:
            s = _scan(buf, 0)
            closes = np.flatnonzero(s.depth < 0)
            end_of_array = int(s.pos[closes[0]]) if closes.size else None
            limit = len(buf) if end_of_array is None else end_of_array
            in_range = s.pos < limit
            starts = s.pos[in_range & (s.char == _OPEN_OBJ) & (s.depth == 1)]
            ends = s.pos[in_range & (s.char == _CLOSE_OBJ) & (s.depth == 0)]
            self._check_values(buf, s, limit, offset)
            self._check_edges(buf, starts, ends, end_of_array, offset)
            if ends.size:
                yield self._batch(buf, starts[: ends.size], ends, offset)
                self._need_comma = True
                cut = int(ends[-1]) + 1
            else:
                cut = 0
            if end_of_array is not None:
                return buf[end_of_array + 1 :] + self._fh.read()
            more = self._fh.read(self._batch_bytes)
            if not more:
                raise self._error("file ends inside 'media_items'", offset + len(buf))
            buf = buf[cut:] + more
            offset += cut

    def _check_values(self, buf: bytes, s: _Structure, limit: int, offset: int) -> None:
        """Every value directly in the array must be an object."""
        bad = (s.pos < limit) & (s.depth == 1) & (s.char == _OPEN_ARR)
        if bad.any():
            p = int(s.pos[np.flatnonzero(bad)[0]])
            raise self._error("media_items holds a value that is not an object", offset + p)

    def _check_edges(
        self, buf: bytes, starts: Array, ends: Array, end_of_array: int | None, offset: int
    ) -> None:
        """Only whitespace and one comma may stand before the first item and after the last."""
        if starts.size:
            self._check_gap(buf, 0, int(starts[0]), offset, commas=int(self._need_comma))
        if end_of_array is not None:
            after = int(ends[-1]) + 1 if ends.size else 0
            self._check_gap(buf, after, end_of_array, offset, commas=0)

    def _check_gap(self, buf: bytes, lo: int, hi: int, offset: int, *, commas: int) -> None:
        gap = buf[lo:hi]
        stripped = gap.translate(None, _WHITESPACE)
        if stripped != b"," * commas:
            bad = lo + len(gap) - len(gap.lstrip(_WHITESPACE))
            what = "a value that is not an object" if stripped.strip(b",") else "a misplaced comma"
            raise self._error(f"media_items holds {what}", offset + bad)

    def _batch(self, buf: bytes, starts: Array, ends: Array, offset: int) -> ItemBatch:
        first, last = int(starts[0]), int(ends[-1]) + 1
        body = bytearray(buf[first:last].translate(_NEWLINES))
        view = np.frombuffer(body, dtype=np.uint8)
        gap_lo = ends[:-1] + 1 - first
        gap_len = starts[1:] - ends[:-1] - 1
        if gap_len.size:
            total = int(gap_len.sum())
            base = np.repeat(gap_lo, gap_len)
            step = np.arange(total, dtype=np.int64) - np.repeat(
                np.cumsum(gap_len) - gap_len, gap_len
            )
            gaps = view[base + step]
            if (
                int(np.count_nonzero(gaps == 0x2C)) != gap_len.size
                or not np.isin(gaps, _GAP_BYTES).all()
            ):
                self._bad_gap(buf, starts, ends, offset)
            view[base + step] = 0x20  # blank the commas between items...
            view[gap_lo] = 0x0A  # ...and end each item's line
        return ItemBatch(
            ndjson=bytes(body) + b"\n",
            offsets=(starts + offset).tolist(),
            count=int(ends.size),
        )

    def _bad_gap(self, buf: bytes, starts: Array, ends: Array, offset: int) -> None:
        for lo, hi in zip(ends[:-1] + 1, starts[1:], strict=True):
            self._check_gap(buf, int(lo), int(hi), offset, commas=1)

    def _parse_top_level(self, header: bytes, trailer: bytes) -> dict[str, Any]:
        try:
            value = json.loads(header + b"null" + trailer)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ExportFormatError(
                f"{self._name}: malformed JSON outside media_items ({exc})",
                hint="the file is damaged; download it again",
            ) from None
        if not isinstance(value, dict):
            raise self._error("top level is not an object", 0)
        value.pop("media_items", None)
        return value
