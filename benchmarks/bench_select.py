"""Select benchmark (issue #7): ``vlanalyze select`` vs the same selection hand-written as
one DuckDB SQL statement over the cache's Parquet, each as a whole process, same run.

The selection: drop items with an image-level ``blur`` issue, dedupe at 0.96 (keep the
most unique), at most 5 per cluster, the top 1,000 by uniqueness, split 80/10/10 by
duplicate group at the loosest level (0.96). Both sides write the same columns to a
Parquet file (the rows and splits are checked equal). Runs alternate (vlanalyze,
reference, vlanalyze, ...) so machine load hits both alike; best of N wall times (the
target), best of N CPU times (user + system: steadier on a shared machine), peak RSS,
all from ``os.wait4``.

    python benchmarks/make_synthetic.py --items 1000000 --format parquet --no-ndjson
    python benchmarks/bench_select.py --data benchmarks/data/n1000000/metadata.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
RULES = [
    "--exclude-issue", "blur",
    "--dedupe", "0.96",
    "--per-cluster", "5",
    "--top", "1000",
    "--split", "train=0.8,val=0.1,test=0.1",
]  # fmt: skip

# The same selection, as a user would write it by hand: one statement, narrow columns
# until the 1,000 rows are known, then the output columns (primary label: User, then
# Model, then Visual Layer, ties by name; split: md5 of "seed:group key").
REFERENCE_SQL = """
WITH media AS (SELECT * FROM read_parquet('{c}/media/*.parquet')),
issues AS (SELECT * FROM read_parquet('{c}/issues/*.parquet')),
labels AS (SELECT * FROM read_parquet('{c}/labels/*.parquet')),
grp AS (
  SELECT media_id, duplicate_group_id AS gid FROM issues
  WHERE issue_type = 'duplicates' AND object_id IS NULL AND duplicate_threshold = 0.96
),
gated AS (
  SELECT media_id, uniqueness_score AS u, cluster_id FROM media
  WHERE media_id NOT IN (
    SELECT media_id FROM issues WHERE issue_type = 'blur' AND object_id IS NULL)
),
deduped AS (
  SELECT * FROM (
    SELECT g.*, grp.gid, row_number() OVER (
      PARTITION BY grp.gid, CASE WHEN grp.gid IS NULL THEN g.media_id END
      ORDER BY g.u DESC NULLS LAST, g.media_id) AS rn
    FROM gated AS g LEFT JOIN grp USING (media_id)
  ) WHERE rn = 1
),
capped AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (
      PARTITION BY cluster_id ORDER BY u DESC NULLS LAST, media_id) AS cn
    FROM deduped
  ) WHERE cn <= 5 OR cluster_id IS NULL
),
top AS (SELECT * FROM capped ORDER BY u DESC NULLS LAST, media_id LIMIT 1000),
primary_label AS (
  SELECT media_id, first(category_name ORDER BY CASE source WHEN 'User' THEN 0
    WHEN 'Model' THEN 1 WHEN 'Visual Layer' THEN 2 ELSE 3 END, category_name) AS label
  FROM labels WHERE media_id IN (SELECT media_id FROM top) GROUP BY media_id
)
SELECT m.media_id, m.file_path, CAST(NULL AS VARCHAR) AS image_path, m.file_name,
  m.media_type, m.uniqueness_score, m.cluster_id, m.video_name, m.width, m.height,
  pl.label,
  CASE WHEN d < 0.8 THEN 'train' WHEN d < 0.9 THEN 'val' ELSE 'test' END AS split,
  row_number() OVER (ORDER BY t.u DESC NULLS LAST, t.media_id) AS rank
FROM (
  SELECT *, CAST('0x' || md5('0:' || COALESCE('dup:' || gid, 'media:' || media_id))[1:13]
    AS UBIGINT) / 4503599627370496.0 AS d FROM top
) AS t JOIN media AS m USING (media_id) LEFT JOIN primary_label AS pl USING (media_id)
ORDER BY rank
"""

REFERENCE = """
import sys, duckdb
sql, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
quoted = "'" + out.replace("'", "''") + "'"  # COPY takes no parameter for its path
con.execute(f"COPY ({sql}) TO {quoted} (FORMAT parquet)")
"""


def run(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def cache_of(data: Path) -> Path:
    """Build (untimed) and return the export's cache folder, in a child process: a big
    parent's pages would count in every later child's peak RSS (fork copies them)."""
    code = "import sys, vlanalyze as v\nwith v.open_export(sys.argv[1]) as ex: print(ex.cache_path)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(data)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return Path(out.stdout.strip().splitlines()[-1])


def same_selection(ours: Path, ref: Path) -> None:
    a = pq.read_table(ours).select(["media_id", "split", "rank", "label"]).to_pylist()
    b = pq.read_table(ref).select(["media_id", "split", "rank", "label"]).to_pylist()
    if a != b:
        raise SystemExit("vlanalyze and the reference selected different rows")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=REPO / "benchmarks/data/n1000000/metadata.parquet"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-ratio", type=float, default=1.3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    cache = cache_of(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        ours_out, ref_out = Path(tmp) / "ours.parquet", Path(tmp) / "ref.parquet"
        ours = [sys.executable, "-m", "vlanalyze", "select", str(args.data), *RULES]
        ours += ["-o", str(ours_out), "--overwrite", "-q"]
        sql = REFERENCE_SQL.format(c=str(cache).replace("'", "''"))
        ref = [sys.executable, "-c", REFERENCE, sql, str(ref_out).replace("'", "''")]
        times: dict[str, list[float]] = {"vlanalyze": [], "reference": []}
        cpu: dict[str, list[float]] = {"vlanalyze": [], "reference": []}
        rss: dict[str, float] = {"vlanalyze": 0.0, "reference": 0.0}
        for _ in range(args.repeats):
            for name, argv in (("vlanalyze", ours), ("reference", ref)):
                wall, cpu_s, peak = run(argv)
                times[name].append(wall)
                cpu[name].append(cpu_s)
                rss[name] = max(rss[name], peak)
        same_selection(ours_out, ref_out)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["vlanalyze"] / best["reference"]
    best_cpu = {k: min(v) for k, v in cpu.items()}
    result = {
        "data": str(args.data),
        "best_s": best,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "best_cpu_s": best_cpu,
        "cpu_ratio": best_cpu["vlanalyze"] / best_cpu["reference"],
        "load_average": os.getloadavg()[0],
        "peak_rss_mb": rss,
        "ratio": ratio,
        "target": args.max_ratio,
        "pass": ratio <= args.max_ratio,
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
