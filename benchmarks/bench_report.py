"""Time ``vlanalyze report`` on a cached 1M-item export with 20,000 images (target: at
most 60 s on 2 cores), and thumbnails made by 1 vs 2 threads.

Builds (once, then reuses) ``<data-dir>/report-n<items>/``: the synthetic Parquet export
(``make_synthetic.py``) and JPEGs (640x480, ~30 KB, a gradient and a few shapes each)
for its first ``--images`` items under ``images/<file_path>``, so the matching by
``file_path`` finds them; then opens it once (builds the table cache, not timed).

Timed, each as a fresh process, best of ``--repeat``: the report with an empty
thumbnail cache (cold), again with it filled (warm); then the thumbnails alone of the
report's images, by 1 and by 2 threads, from an empty cache.

    python benchmarks/bench_report.py [--items 1000000] [--images 20000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0


def build(folder: Path, items: int, images: int) -> Path:
    meta = folder / "metadata.parquet"
    if not meta.is_file():
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks/make_synthetic.py"),
                "--items",
                str(items),
                "--format",
                "parquet",
                "--no-ndjson",
                "--out",
                str(folder),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    marker = folder / "images" / ".complete-shown"
    if not marker.is_file():
        _images(folder, meta, images)
        marker.write_text("ok")
    return meta


def _shown_paths(folder: Path) -> list[str]:
    """The file paths of the items a report shows: they all get an image, so that every
    tile needs a thumbnail (the worst case)."""
    sys.path.insert(0, str(ROOT))
    from contextlib import closing

    import vlanalyze as vla
    from vlanalyze.reporting import _data

    ex = vla.open_export(folder)
    with closing(ex.duckdb()) as con:
        level = _data.resolve_level(_data.levels(con), None)
        ids = _data.clusters(con, groups=16, members=12).members["media_id"].to_list()
        if level is not None:
            ids += (
                _data.duplicate_groups(con, level, groups=24, members=8)
                .members["media_id"]
                .to_list()
            )
        return [str(p) for p in _data.items(con, ids)["file_path"].to_list()]


def _images(folder: Path, meta: Path, count: int) -> None:
    import pyarrow.parquet as pq
    from PIL import Image, ImageDraw

    shown = _shown_paths(folder)
    first = pq.read_table(meta, columns=["file_path"]).column(0).to_pylist()[: count - len(shown)]
    paths = list(dict.fromkeys(shown + first))
    rng = random.Random(7)
    for i, rel in enumerate(paths):
        base = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        im = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
        im = Image.blend(im, Image.new("RGB", im.size, base), 0.6)
        draw = ImageDraw.Draw(im)
        for _ in range(4):
            x, y = rng.randrange(560), rng.randrange(400)
            draw.ellipse(
                (x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 160)),
                fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)),
            )
        target = folder / "images" / rel.lstrip("/")
        if target.is_file():
            continue  # made by an earlier run
        target.parent.mkdir(parents=True, exist_ok=True)
        im.save(target, "JPEG", quality=85)
        if i % 5000 == 0:
            print(f"  images: {i}/{len(paths)}", file=sys.stderr)


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


THUMBS = """
import sys, time
import vlanalyze as vla
from vlanalyze.reporting import _report
ex = vla.open_export(sys.argv[1])
paths = {}
orig = _report.Thumbnailer.many
def many(self, image_paths, **kw):
    paths["p"] = list(image_paths)
    return {}
_report.Thumbnailer.many = many
vla.report(ex, sys.argv[2], overwrite=True)
_report.Thumbnailer.many = orig
t = _report.Thumbnailer(ex.root, _report.thumbnail_cache(ex.cache_path))
start = time.perf_counter()
made = t.many(paths["p"], workers=int(sys.argv[3]))
print(len(made), time.perf_counter() - start)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    p.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = p.parse_args()
    folder = args.data_dir / f"report-n{args.items}"
    meta = build(folder, args.items, args.images)
    py = sys.executable
    subprocess.run(
        [py, "-c", f"import vlanalyze as v; v.open_export({str(folder)!r})"], check=True
    )  # the table cache: built once, not timed
    thumbs = next((folder / ".vlanalyze-cache").glob("*/"), folder) / "thumbnails"
    out = folder.parent / f"report-n{args.items}.html"
    cli = [py, "-m", "vlanalyze", "report", str(folder), "-o", str(out), "--overwrite", "-q"]
    colds, warms = [], []
    for _ in range(args.repeat):
        shutil.rmtree(thumbs, ignore_errors=True)
        colds.append(timed(cli))
        warms.append(timed(cli))
    cold, warm = min(colds), min(warms)
    threads = {}
    for workers in (1, 2):
        shutil.rmtree(thumbs, ignore_errors=True)
        res = subprocess.run(
            [py, "-c", THUMBS, str(folder), str(out) + ".tmp.html", str(workers)],
            check=True,
            capture_output=True,
            text=True,
        )
        made, seconds = res.stdout.split()
        threads[workers] = (int(made), float(seconds))
    Path(str(out) + ".tmp.html").unlink(missing_ok=True)
    result = {
        "items": args.items,
        "images": args.images,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "report_cold_s": round(cold, 1),
        "report_warm_s": round(warm, 1),
        "all_cold_s": [round(x, 1) for x in colds],
        "all_warm_s": [round(x, 1) for x in warms],
        "report_bytes": out.stat().st_size,
        "thumbnails": threads[2][0],
        "thumbs_1_thread_s": round(threads[1][1], 2),
        "thumbs_2_threads_s": round(threads[2][1], 2),
        "target_s": TARGET_SECONDS,
        "ok": cold <= TARGET_SECONDS,
        "metadata": str(meta),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
