"""Time ``extract_archive`` against ``unzip -q -o`` on a synthetic 5,000-image export.

Builds (once, then reuses) ``<data-dir>/extract/export-<count>-<method>.zip``: ``count``
JPEG-like files of 20-80 KB random bytes under ``images/`` plus a ``metadata.json``,
deflated at level 1 (or stored with ``--stored``) as real exports barely compress
their images. Then times both extractors into fresh folders, interleaved, best of
``--repeat`` each, and prints both times and the ratio (target: at most 1.10x).

    python benchmarks/bench_extract.py [--data-dir benchmarks/data] [--count 5000] [--stored]
                                       [--repeat 3] [--out-dir /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from vlanalyze.fetch._archive import extract_archive  # noqa: E402

TARGET_RATIO = 1.10


def build_archive(path: Path, count: int, *, stored: bool, seed: int = 42) -> None:
    rng = random.Random(seed)
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    tmp = path.with_name(path.name + ".part")
    items = []
    with zipfile.ZipFile(tmp, "w", compression=method, compresslevel=None if stored else 1) as zf:
        for i in range(count):
            name = f"images/{i:06d}_{rng.getrandbits(64):016x}.jpg"
            body = rng.randbytes(rng.randint(20_000, 80_000) - 6)
            zf.writestr(name, b"\xff\xd8\xff\xe0" + body + b"\xff\xd9")
            items.append({"media_id": f"{i:08d}", "file_name": name, "label": f"c{i % 10}"})
        meta = {"info": {"schema_version": "1.1"}, "media_items": items}
        zf.writestr("metadata.json", json.dumps(meta))
    tmp.replace(path)


def timed(run: Callable[[], object], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stored", action="store_true", help="store, do not deflate")
    parser.add_argument("--out-dir", type=Path, help="extract here (e.g. /dev/shm); default: data")
    args = parser.parse_args(argv)

    unzip = shutil.which("unzip")
    if unzip is None:
        sys.exit("bench_extract: 'unzip' is not installed (apt-get install -y unzip)")
    work = args.data_dir / "extract"
    work.mkdir(parents=True, exist_ok=True)
    archive = work / f"export-{args.count}-{'stored' if args.stored else 'deflated'}.zip"
    if not archive.exists():
        print(f"building {archive} ...", flush=True)
        build_archive(archive, args.count, stored=args.stored)
    with zipfile.ZipFile(archive) as zf:
        size = sum(info.file_size for info in zf.infolist())
    archive.read_bytes()  # warm the page cache for both contenders alike

    out_base = args.out_dir or work
    out_unzip, out_ours = out_base / "bench-out-unzip", out_base / "bench-out-vlanalyze"
    times: dict[str, list[float]] = {"unzip": [], "ours": []}
    for _ in range(args.repeat):  # interleaved, so drift hurts both alike
        times["unzip"].append(
            timed(
                lambda: subprocess.run(
                    [unzip, "-q", "-o", str(archive), "-d", str(out_unzip)], check=True
                ),
                out_unzip,
            )
        )
        times["ours"].append(timed(lambda: extract_archive(archive, out_ours), out_ours))
    best_unzip, best_ours = min(times["unzip"]), min(times["ours"])
    ratio = best_ours / best_unzip
    print(f"archive          {archive} ({args.count + 1} members, {size / 1e6:.0f} MB)")
    for label, key in (("unzip -q -o", "unzip"), ("extract_archive", "ours")):
        runs = ", ".join(f"{t:.3f}" for t in times[key])
        print(f"{label:<16} best {min(times[key]):.3f} s  (runs: {runs})")
    verdict = "ok" if ratio <= TARGET_RATIO else "SLOWER THAN TARGET"
    print(f"ratio            {ratio:.2f}x (target <= {TARGET_RATIO:.2f}x: {verdict})")
    shutil.rmtree(out_unzip, ignore_errors=True)
    shutil.rmtree(out_ours, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
