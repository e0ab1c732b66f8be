"""Cut a huge ``metadata.json`` into chunk files of whole media items, for DuckDB.

DuckDB parses JSON far faster than Python, but it reads a file, not the inside of the
one big ``{"info": ..., "media_items": [...]}`` object. So the ``media_items`` array is
copied out in chunks, each a small JSON array file of whole items:

* the fast path finds the array's two ends (an exact scan of the head, a validated
  look at the tail) and cuts it where one item ends and the next begins
  (``}, {"media_id":``), copying bytes in the kernel. It trusts nothing: a cut in the
  wrong place makes that chunk fail to parse, and the caller then falls back to
* the exact path, a structural scan of every byte (:mod:`vlanalyze.query._jsonsplit`),
  which is slower but exact, and which locates a real error by its byte offset.

Either way a chunk file may begin with a ``lead`` item that is not the export's (the
loader's type sample: :data:`vlanalyze.query._schema.SAMPLE_ITEM`); :attr:`Chunk.lead`
says so, and readers skip it.

It never parses an item itself, and writes only chunk files in the work folder it is
given.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vlanalyze.errors import ExportFormatError
from vlanalyze.query._jsonsplit import DEFAULT_BATCH_BYTES, MediaItemSplitter

# Measured on 2 cores: 64 MiB chunks beat both smaller ones (per-statement overhead) and
# larger ones (more memory, and a longer wait for the last one).
CHUNK_BYTES = 64 << 20
_HEAD_BYTES = 4 << 20
_TAIL_BYTES = 1 << 20
_WINDOW = 4 << 20


@dataclass(frozen=True)
class ChunkSizes:
    """How a JSON export is cut: the defaults are measured; tests shrink them."""

    chunk_bytes: int = CHUNK_BYTES  # fast path: bytes of items per chunk file
    head_bytes: int = _HEAD_BYTES  # fast path: read size while scanning the head
    batch_bytes: int = DEFAULT_BATCH_BYTES  # exact path: bytes of items per batch

    def __post_init__(self) -> None:
        for name in ("chunk_bytes", "head_bytes", "batch_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


DEFAULT_SIZES = ChunkSizes()


@dataclass
class Chunk:
    """One chunk file of media items and where it came from."""

    path: Path
    format: str  # DuckDB read_json format: "array" or "newline_delimited"
    start_offset: int
    end_offset: int
    item_offsets: list[int] | None = None  # exact path only: each item's file offset
    lead: bool = False  # the file starts with an item that is not the export's

    def locate_error(self, source: Path, exc: Exception) -> ExportFormatError:
        """Explain a DuckDB parse failure of this chunk, with the byte offset."""
        found = self._find_bad_item()
        if found is not None:
            offset, message = found
            where = f"at byte {offset}"
        else:  # valid JSON that DuckDB still refused, e.g. a value of the wrong type
            message = str(exc).strip().splitlines()[0].replace(str(self.path), "chunk")
            where = f"in bytes {self.start_offset}-{self.end_offset}"
        return ExportFormatError(
            f"{source}: malformed media item {where}: {message}",
            hint="the export is damaged; download it again",
        )

    def _find_bad_item(self) -> tuple[int, str] | None:
        if self.item_offsets is None:
            return None
        with self.path.open("rb") as fh:
            if self.lead:
                fh.readline()
            for line, offset in zip(fh, self.item_offsets, strict=False):
                try:
                    json.loads(line)
                except json.JSONDecodeError as exc:
                    return offset + exc.pos, exc.msg
        return None


class FastPathFailed(Exception):
    """A fast-path chunk did not parse: redo the file on the exact path."""


class JsonChunks:
    """Iterate the chunk files of one JSON export; then read :attr:`top_level`."""

    def __init__(
        self,
        path: Path,
        work_dir: Path,
        *,
        exact: bool = False,
        sizes: ChunkSizes = DEFAULT_SIZES,
        lead: bytes = b"",
    ) -> None:
        self.path = path
        self.work_dir = work_dir
        self.exact = exact
        self.sizes = sizes
        self.lead = lead.strip()
        self.top_level: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Chunk]:
        with self.path.open("rb") as fh:
            if self.exact:
                yield from self._exact(fh)
                return
            plan = _FastPlan.make(fh, self.path, self.sizes.head_bytes)
            if plan is None:
                fh.seek(0)
                yield from self._exact(fh)
                return
            self.top_level = plan.top_level
            for i, (start, end) in enumerate(plan.cuts(fh, self.sizes.chunk_bytes)):
                target = self.work_dir / f"chunk-{i:05d}.json"
                _copy_range(fh, target, start, end, self.lead)
                yield Chunk(target, "array", start, end, lead=bool(self.lead))

    def _exact(self, fh: IO[bytes]) -> Iterator[Chunk]:
        splitter = MediaItemSplitter(fh, name=str(self.path), batch_bytes=self.sizes.batch_bytes)
        for i, batch in enumerate(splitter):
            target = self.work_dir / f"chunk-{i:05d}.ndjson"
            with target.open("wb") as out:
                if self.lead:
                    out.write(self.lead + b"\n")
                out.write(batch.ndjson)
            end = batch.offsets[-1] if batch.offsets else 0
            fmt = "newline_delimited"
            yield Chunk(target, fmt, batch.offsets[0], end, batch.offsets, bool(self.lead))
        self.top_level = splitter.top_level


class Prefetched(Iterator[Chunk]):
    """The chunks of ``chunks``, each made on a thread of its own while the caller works
    on the one before (making a chunk is mostly the kernel's copy, which releases the
    GIL: measured 1 s of 6 at 1M small items, off the parser's thread). :meth:`close`
    waits for the chunk being made, so nothing writes in the work folder afterwards."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self._chunks = iter(chunks)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vla-chunks")
        self._next = self._pool.submit(next, self._chunks, None)

    def __next__(self) -> Chunk:
        chunk = self._next.result()  # the chunker's own error, if it failed
        if chunk is None:
            raise StopIteration
        self._next = self._pool.submit(next, self._chunks, None)
        return chunk

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def json_chunks(
    path: Path,
    *,
    work_dir: Path,
    exact: bool = False,
    sizes: ChunkSizes = DEFAULT_SIZES,
    lead: bytes = b"",
) -> JsonChunks:
    """The chunk files of ``path``'s media items (see :class:`JsonChunks`), each starting
    with the item ``lead`` if given (one line of JSON)."""
    return JsonChunks(path, work_dir, exact=exact, sizes=sizes, lead=lead)


@dataclass
class _FastPlan:
    array_start: int  # first byte after "["
    array_end: int  # offset of the closing "]"
    first_key: bytes
    top_level: dict[str, Any]

    @classmethod
    def make(cls, fh: IO[bytes], path: Path, head_bytes: int) -> _FastPlan | None:
        """Find the array's ends; None when the file needs the exact path."""
        splitter = MediaItemSplitter(fh, name=str(path), batch_bytes=head_bytes)
        header, rest, start = splitter.read_header()
        key = re.match(rb'\s*\{\s*"((?:[^"\\]|\\.)*)"\s*:', rest)
        if key is None:
            return None  # empty array, or a shape the cut pattern cannot serve
        size = os.fstat(fh.fileno()).st_size
        found = _find_array_end(fh, header, size, start)
        if found is None:
            return None
        end, top_level = found
        return cls(start, end, key.group(1), top_level)

    @property
    def pattern(self) -> re.Pattern[bytes]:
        """Matches between two items: ``}`` + the comma (group 1) + the next item's key."""
        return re.compile(rb'\}(\s*,\s*)\{\s*"' + re.escape(self.first_key) + rb'"\s*:')

    def cuts(self, fh: IO[bytes], chunk_bytes: int) -> Iterator[tuple[int, int]]:
        """Byte ranges of whole items, each about ``chunk_bytes`` long but the first and
        the last, an eighth of that: the normalizer's two workers (each loading and
        writing its own chunk) start sooner and finish closer together."""
        pattern = self.pattern
        start = self.array_start
        small = max(chunk_bytes // 8, 1)
        target = start + small
        while target < self.array_end:
            fh.seek(target)
            window = fh.read(min(_WINDOW, self.array_end - target))
            m = pattern.search(window)
            if m is None:
                target += len(window)
                continue
            yield start, target + m.start() + 1
            start = target + m.end(1)
            remaining = self.array_end - start
            last = small < remaining <= chunk_bytes + small  # cut the last eighth apart
            target = self.array_end - small if last else start + chunk_bytes
        yield start, self.array_end


def _find_array_end(
    fh: IO[bytes], header: bytes, size: int, array_start: int
) -> tuple[int, dict[str, Any]] | None:
    """The offset of media_items' closing ``]``, checked by parsing what follows it."""
    tail_start = max(array_start, size - _TAIL_BYTES)
    fh.seek(tail_start)
    tail = fh.read()
    pos = len(tail)
    for _ in range(64):
        pos = tail.rfind(b"]", 0, pos)
        if pos < 0:
            return None
        try:
            value = json.loads(header + b"null" + tail[pos + 1 :])
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(value, dict):
            value.pop("media_items", None)
            return tail_start + pos, value
    return None


def _copy_range(fh: IO[bytes], target: Path, start: int, end: int, lead: bytes) -> None:
    """Write ``[`` + ``lead,`` (if any) + bytes ``start:end`` of ``fh`` + ``]`` to ``target``."""
    with target.open("wb") as out:
        out.write(b"[" + (lead + b"," if lead else b""))
        out.flush()
        offset, remaining = start, end - start
        copy = getattr(os, "copy_file_range", None)
        while remaining > 0 and copy is not None:
            try:
                n = copy(fh.fileno(), out.fileno(), remaining, offset, out.tell())
            except OSError:
                break
            if n == 0:
                break
            offset += n
            remaining -= n
            out.seek(0, os.SEEK_END)
        if remaining:
            fh.seek(offset)
            _copy_exact(fh, out, remaining)
        out.write(b"]")


def _copy_exact(src: IO[bytes], dst: IO[bytes], count: int) -> None:
    while count:
        block = src.read(min(count, 16 << 20))
        if not block:
            raise ExportFormatError(f"{getattr(src, 'name', 'file')}: ended while being read")
        dst.write(block)
        count -= len(block)
