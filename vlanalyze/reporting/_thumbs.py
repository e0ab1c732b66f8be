"""Thumbnails of an export's images, made with Pillow and kept in a folder beside the
export's table cache builds (``.vlanalyze-cache/<entry>/thumbnails/``), so a second
report makes none.

Images are read where they are: from the export folder, or from the ZIP in place (one
member at a time, never extracted). A cached thumbnail is named by a hash of the image's
path, size and modification time (a ZIP member's CRC) and the thumbnail size, so a
changed image gets a new one. An image that cannot be read gets no thumbnail (the report
shows a placeholder); nothing here raises for one bad image. Never prints.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlanalyze._fs import ProgressCallback, write_bytes_atomic
from vlanalyze._metadata import zip_member_name

SIZE = 176  # px, the longer side
QUALITY = 80
#: Threads that decode images: Pillow releases the GIL while decoding and resizing, and
#: two threads measured faster than one on 2 cores (benchmarks/bench_report.py).
WORKERS = 2
MAX_PIXELS = 100_000_000  # larger images are skipped (a decompression bomb or a scan)


class Thumbnailer:
    """Makes (or finds in the cache) the thumbnail of an image inside an export."""

    def __init__(self, root: Path, cache: Path, *, in_zip: str | None = None, size: int = SIZE):
        """``root``: the export folder, or the ZIP (then ``in_zip`` is the prefix of its
        members, "" at the root). ``cache``: the thumbnail folder (made on first use)."""
        self.root = root
        self.cache = cache
        self.in_zip = in_zip
        self.size = size
        self._local = threading.local()
        self._opened: list[zipfile.ZipFile] = []
        self._lock = threading.Lock()
        self._zip_info: dict[str, zipfile.ZipInfo] | None = None

    def _zip(self) -> zipfile.ZipFile:
        # One ZipFile per thread: reading members concurrently through one is unsafe.
        zf: zipfile.ZipFile | None = getattr(self._local, "zip", None)
        if zf is None:
            zf = zipfile.ZipFile(self.root)
            self._local.zip = zf
            with self._lock:
                self._opened.append(zf)
        return zf

    def _stamp(self, image_path: str) -> str | None:
        """What identifies this version of the image, or None when it is not there."""
        if self.in_zip is not None:
            info = self._zip_infos().get(self.in_zip + image_path)
            return None if info is None else f"{info.file_size}:{info.CRC}"
        path = (self.root / image_path).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return None  # image_path never leaves the export
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def _read(self, image_path: str) -> bytes:
        if self.in_zip is not None:
            return self._zip().read(self._zip_infos()[self.in_zip + image_path])
        return (self.root / image_path).read_bytes()

    def _zip_infos(self) -> dict[str, zipfile.ZipInfo]:
        """The ZIP's members by their names as ``unzip`` shows them."""
        if self._zip_info is None:
            with zipfile.ZipFile(self.root) as zf:
                self._zip_info = {zip_member_name(i): i for i in zf.infolist()}
        return self._zip_info

    def thumbnail(self, image_path: str) -> bytes | None:
        """The JPEG thumbnail of ``image_path`` (relative to the export), or None."""
        try:
            stamp = self._stamp(image_path)
        except (OSError, zipfile.BadZipFile):
            return None
        if stamp is None:
            return None
        key = hashlib.sha256(f"{image_path}\0{stamp}\0{self.size}".encode()).hexdigest()
        cached = self.cache / key[:2] / f"{key}.jpg"
        try:
            return cached.read_bytes()
        except OSError:
            pass
        data = self._make(image_path)
        if data is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(cached, data, overwrite=True)
            except OSError:
                pass  # a read-only place: the report still gets its thumbnail
        return data

    def _make(self, image_path: str) -> bytes | None:
        from PIL import Image

        try:
            raw = self._read(image_path)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(raw)) as im:
                    if im.width * im.height > MAX_PIXELS:
                        return None
                    im.draft("RGB", (self.size, self.size))  # JPEG: decode at 1/2..1/8 scale
                    rgb = im.convert("RGB")
            rgb.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=QUALITY, optimize=True)
            return out.getvalue()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, zipfile.BadZipFile):
            return None
        except Image.DecompressionBombWarning:
            return None

    def many(
        self,
        image_paths: Iterable[str],
        *,
        workers: int = WORKERS,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, bytes]:
        """Thumbnails of every path that has one (``workers`` threads; 1: in this one)."""
        paths = sorted(set(image_paths))
        done: dict[str, bytes] = {}
        if on_progress:
            on_progress(0, len(paths))

        def one(path: str) -> tuple[str, bytes | None]:
            return path, self.thumbnail(path)

        if workers > 1 and len(paths) > 1:
            with ThreadPoolExecutor(workers) as pool:
                results: Iterable[tuple[str, bytes | None]] = pool.map(one, paths)
                done = self._collect(results, len(paths), on_progress)
        else:
            done = self._collect(map(one, paths), len(paths), on_progress)
        self.close()
        return done

    @staticmethod
    def _collect(
        results: Iterable[tuple[str, bytes | None]],
        total: int,
        on_progress: ProgressCallback | None,
    ) -> dict[str, bytes]:
        done: dict[str, bytes] = {}
        for i, (path, data) in enumerate(results, 1):
            if data is not None:
                done[path] = data
            if on_progress and (i % 50 == 0 or i == total):
                on_progress(i, total)
        return done

    def close(self) -> None:
        """Close the ZIP handles opened by any thread."""
        with self._lock:
            for zf in self._opened:
                zf.close()
            self._opened.clear()
        self._local = threading.local()


def thumbnail_cache(cache_path: Path) -> Path:
    """The thumbnail folder of the export whose table cache build is ``cache_path``: in
    the export's cache entry, beside its builds (so it outlives a rebuild; the cache's
    cleaning removes builds and ``.building-*`` folders only)."""
    return cache_path.parent / "thumbnails"
