"""Benchmark: download a 1 GB archive from the stand-in with ``download_file`` vs ``curl``.

Both fetch the same presigned URL from the same server in the same run; best of N runs
each (alternating, so background load hits both alike). Prints seconds, MB/s and the
ratio ``download_file time / curl time`` (target: <= 1.0).

    python benchmarks/bench_download.py [--size-mb 1024] [--runs 3] [--chunk-mb 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vlanalyze.fetch._client import VisualLayerClient
from vlanalyze.fetch._download import download_file
from vlanalyze.testing import StandIn, write_demo_export


def _make_archive(path: Path, size_mb: int) -> None:
    block = os.urandom(1024 * 1024)  # incompressible, like images inside a ZIP
    with open(path, "wb") as file:
        for _ in range(size_mb):
            file.write(block)


def _timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-mb", type=float, default=4)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed: nothing to compare with", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="vla-bench-") as tmp_name:
        tmp = Path(tmp_name)
        archive = tmp / "archive.zip"
        _make_archive(archive, args.size_mb)
        export = write_demo_export(tmp / "export")
        with (
            StandIn(export, api_key=None, api_secret=None, archive_file=archive) as server,
            VisualLayerClient(server.base_url) as client,
        ):
            server.polls_to_complete = 0
            task = client.start_export(server.dataset_id)
            url = client.resolve_url(
                client.wait_for_export(server.dataset_id, task.id).download_uri or ""
            )
            out = tmp / "out.zip"
            chunk = int(args.chunk_mb * 1024 * 1024)
            curl_times, ours = [], []
            for _ in range(args.runs):
                curl_times.append(
                    _timed(lambda: subprocess.run(["curl", "-s", "-o", str(out), url], check=True))
                )
                assert out.stat().st_size == archive.stat().st_size
                out.unlink()
                ours.append(_timed(lambda: download_file(client, url, out, chunk_size=chunk)))
                assert out.stat().st_size == archive.stat().st_size
                out.unlink()
    size = args.size_mb * 1024 * 1024 / 1e6
    best_curl, best_ours = min(curl_times), min(ours)
    print(f"archive: {args.size_mb} MiB, best of {args.runs}, chunk {args.chunk_mb} MiB")
    print(f"curl:          {best_curl:6.2f} s  {size / best_curl:7.0f} MB/s")
    print(f"download_file: {best_ours:6.2f} s  {size / best_ours:7.0f} MB/s")
    print(f"ratio (download_file time / curl time): {best_ours / best_curl:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
