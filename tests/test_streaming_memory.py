"""The streaming JSON loader's memory does not grow with the file (issue #2).

Two exports, one four times the size of the other, are normalized each in a fresh
Python process, and the peak RSS of the two processes is compared. Chunks are made
small (4 MiB instead of 32 MiB, through open_export's tuning arguments) so that both
files span many chunks without making the suite slow: what is measured is that memory is
bounded by the chunk size, not by the file.

The exact path is taken because the file asks for it (a top-level key of 2 MiB after
the items hides the array's end from the fast path), and each child proves which path
it took: the other path's size is set to 1 GiB, so only the path under test can report
progress many times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = """
import json, resource, sys
import vlanalyze
path, cache, mode = sys.argv[1:4]
small, huge = 4 << 20, 1 << 30
sizes = {"chunk_bytes": small, "batch_bytes": huge}
if mode == "exact":
    sizes = {"chunk_bytes": huge, "batch_bytes": small}
calls = []
with vlanalyze.open_export(
    path, cache_dir=cache, on_progress=lambda done, total: calls.append(done), **sizes
) as ex:
    counts = ex.counts
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"counts": counts, "peak_bytes": peak_kib * 1024, "progress": calls}))
"""


def _write_export(path: Path, n: int, *, tail: str = "") -> int:
    """Write an export of ``n`` items (about 2.7 KB each), streaming; return its size."""
    item = {
        "media_id": "MEDIAID",
        "media_type": "image",
        "file_name": "MEDIAID.jpg",
        "file_path": "folder/MEDIAID.jpg",
        "file_size": "48.27KB",
        "uniqueness_score": 0.5,
        "height": 720,
        "width": 576,
        "url": "http://app.visual-layer.com/dataset/d/data/image/MEDIAID",
        "cluster_id": "49997382-b7c3-4c83-83a3-fa4e0a586f2b",
        "metadata_items": [
            *(
                {
                    "type": "issue",
                    "properties": {
                        "issue_type": "duplicates",
                        "confidence": 0.97,
                        "duplicate_group_id": f"35395121-5cb1-4a92-906f-dd4cb9ff62d{k}",
                        "duplicate_threshold": 0.96 + k / 100,
                    },
                }
                for k in range(5)
            ),
            *(
                {
                    "type": "image_label",
                    "properties": {
                        "category_name": f"c{k}",
                        "source": "Visual Layer",
                        "original_id": -1,
                    },
                }
                for k in range(10)
            ),
            {"type": "caption", "properties": {"text": "lorem ipsum " * 50, "source": "Model"}},
        ],
    }
    template = json.dumps(item, separators=(",", ":"))
    head = {"schema_version": "1.1", "total_media_items": n}
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"info":' + json.dumps(head) + ',"media_items":[')
        block = 2000
        for start in range(0, n, block):
            ids = range(start, min(start + block, n))
            body = ",".join(template.replace("MEDIAID", f"{i:036d}") for i in ids)
            fh.write(("," if start else "") + body)
        fh.write("]" + tail + "}")
    return path.stat().st_size


def _peak(path: Path, cache: Path, mode: str) -> tuple[dict[str, int], int, list[int]]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(cache), mode],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return data["counts"], data["peak_bytes"], data["progress"]


MB = 1 << 20


@pytest.mark.slow  # about 10 s each: two 40 and 160 MB exports, two child processes
@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path, mode: str) -> None:
    small_n, big_n = 15_000, 60_000
    tail = ',"padding":"' + "x" * (2 * MB) + '"' if mode == "exact" else ""
    small_size = _write_export(tmp_path / "small.json", small_n, tail=tail)
    big_size = _write_export(tmp_path / "big.json", big_n, tail=tail)
    assert big_size - len(tail) >= 4 * (small_size - len(tail)) - MB
    assert small_size > 30 * MB  # several 4 MiB chunks even for the small one

    small_counts, small_peak, small_progress = _peak(
        tmp_path / "small.json", tmp_path / "c-small", mode
    )
    big_counts, big_peak, big_progress = _peak(tmp_path / "big.json", tmp_path / "c-big", mode)

    # Many progress steps, never going back: the path under test read it all.
    for progress in (small_progress, big_progress):
        assert len(progress) > 3 and progress == sorted(progress), progress

    assert small_counts["media"] == small_n and big_counts["media"] == big_n
    assert big_counts["labels"] == 10 * big_n and big_counts["issues"] == 5 * big_n
    assert big_peak < 1.3 * small_peak + 50 * MB, (
        f"peak RSS {big_peak / MB:.0f} MB for {big_size / MB:.0f} MB of JSON vs "
        f"{small_peak / MB:.0f} MB for {small_size / MB:.0f} MB"
    )
