"""Load benchmarks: vlanalyze against DuckDB on the same data, as ratios of one run.

Every measurement runs in a fresh subprocess (best of N), whose peak RSS is read from
``os.wait4``. Times are measured inside the child, around the operation only (imports
excluded; the ``--help`` benchmark covers start-up). See benchmarks/README.md.

    python benchmarks/make_synthetic.py --items 100000
    python benchmarks/bench_load.py --sizes 100000 --repeats 1     # quick: < 1 min
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP_SQL = "SELECT file_path, uniqueness_score FROM {src} ORDER BY uniqueness_score DESC LIMIT 100"

# Child programs. argv[1:] are paths; each prints one JSON object on its last line.
VLA_OPEN = """
import json, sys, time
import duckdb, polars  # imported before the timer on both sides
import vlanalyze as vla
import vlanalyze.query._normalize  # the normalizer (and pyarrow) loads only when used
open_export = vla.open_export  # resolves a lazy import
t = time.perf_counter()
ex = open_export(sys.argv[1], cache_dir=sys.argv[2])
op = time.perf_counter() - t
print(json.dumps({"op": op, "cache_path": str(ex.cache_path)}))
"""
DUCK_LOAD = """
import json, sys, time
import duckdb
t = time.perf_counter()
con = duckdb.connect(sys.argv[2])
src = sys.argv[1].replace("'", "''")
con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{src}', format='newline_delimited')")
n = con.execute("SELECT count(*) FROM t").fetchone()[0]
con.close()
print(json.dumps({"op": time.perf_counter() - t, "rows": n}))
"""
VLA_TOP = f"""
import json, sys, time
import duckdb, polars  # imported before the timer on both sides
import vlanalyze as vla
open_export = vla.open_export  # resolves a lazy import
t = time.perf_counter()
ex = open_export(sys.argv[1], cache_dir=sys.argv[2])
df = ex.sql({TOP_SQL.format(src="media")!r})
print(json.dumps({{"op": time.perf_counter() - t, "rows": df.height}}))
"""
DUCK_TOP = f"""
import json, sys, time
import duckdb, polars
t = time.perf_counter()
src = sys.argv[1].replace("'", "''")
con = duckdb.connect()
df = con.sql({TOP_SQL!r}.format(src=f"read_parquet('{{src}}')")).pl()
print(json.dumps({{"op": time.perf_counter() - t, "rows": df.height}}))
"""


@dataclass
class Run:
    """One child process: wall time (parent side), op time (child side), peak RSS."""

    ok: bool
    wall: float
    rss_mb: float
    cpu_s: float = 0.0  # user + system time of the whole child (all threads)
    out: dict[str, object] = field(default_factory=dict)
    error: str = ""

    @property
    def op(self) -> float:
        value = self.out.get("op", self.wall)
        return float(value) if isinstance(value, (int, float)) else self.wall


def run_child(argv: Sequence[str], timeout: float | None = None) -> Run:
    """Run ``argv``; wait with ``os.wait4`` to get the child's own peak RSS."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = wait4_with_timeout(proc, timeout)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        return Run(False, wall, rss_mb, cpu, error=(stderr or stdout)[-2000:])
    lines = stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return Run(True, wall, rss_mb, cpu, out=result)


def wait4_with_timeout(
    proc: subprocess.Popen[bytes], timeout: float | None
) -> tuple[int, int, resource.struct_rusage]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            return pid, status, usage
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            deadline = None
        time.sleep(0.05)


def best_of(
    make_argv: Callable[[Path], Sequence[str]],
    repeats: int,
    scratch: Path,
    timeout: float | None = None,
) -> Run:
    """Best op time of ``repeats`` runs, each given a fresh empty folder (removed after).

    RSS is the maximum over the runs (conservative).
    """
    runs = []
    for _ in range(repeats):
        fresh = Path(tempfile.mkdtemp(dir=scratch))
        try:
            run = run_child(make_argv(fresh), timeout)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        if not run.ok:
            return run
        runs.append(run)
    best = min(runs, key=lambda r: r.op)
    best.rss_mb = max(r.rss_mb for r in runs)
    return best


def py(code: str, *args: str | Path) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


@dataclass
class Row:
    """One line of the report."""

    benchmark: str
    vlanalyze: str
    reference: str
    measured: str
    target: str
    passed: bool | None  # None: not measured / not applicable
    detail: dict[str, object] = field(default_factory=dict)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def fmt_run(run: Run | None, what: str = "op") -> str:
    if run is None:
        return "—"
    if not run.ok:
        return "error"
    if what == "wall":
        return f"{run.wall:.3f} s, {run.rss_mb:,.0f} MB"
    return f"{run.op:.2f} s (process {run.wall:.2f} s), {run.rss_mb:,.0f} MB"


def ratio_row(name: str, vla: Run, ref: Run | None, target: float) -> Row:
    detail: dict[str, object] = {"vlanalyze": vars(vla), "reference": vars(ref) if ref else None}
    if not vla.ok or ref is None or not ref.ok:
        return Row(name, fmt_run(vla), fmt_run(ref), "—", f"≤ {target}x", None, detail)
    ratio = vla.op / ref.op
    measured = f"{ratio:.2f}x"
    return Row(name, fmt_run(vla), fmt_run(ref), measured, f"≤ {target}x", ratio <= target, detail)


def data_folder(args: argparse.Namespace, n: int, profile: str = "mixed") -> Path:
    """``n<size>`` for the mixed profile, ``n<size>-<profile>`` for the others
    (make_synthetic.py's folders)."""
    return args.data_dir / (f"n{n}" if profile == "mixed" else f"n{n}-{profile}")


def present_sizes(args: argparse.Namespace, file_name: str, profile: str = "mixed") -> list[int]:
    return [n for n in sorted(args.sizes) if (data_folder(args, n, profile) / file_name).exists()]


def db_target(fresh: Path, mode: str) -> str:
    return ":memory:" if mode == "memory" else str(fresh / "reference.duckdb")


def normalize_one(
    args: argparse.Namespace, n: int, scratch: Path, profile: str = "mixed"
) -> tuple[Run, Run | None]:
    folder = data_folder(args, n, profile)
    repeats = args.repeats if n <= 1_000_000 else args.big_repeats
    log(f"normalize {folder.name}: vlanalyze x {repeats}")
    vla = best_of(
        lambda d: py(VLA_OPEN, folder / "metadata.json", d), repeats, scratch, args.timeout
    )
    if not vla.ok:
        log(f"  vlanalyze failed:\n{vla.error}")
    ndjson = folder / "media_items.ndjson"
    if not ndjson.exists():
        return vla, None
    log(f"normalize {folder.name}: duckdb read_json x {repeats}")
    ref = best_of(
        lambda d: py(DUCK_LOAD, ndjson, db_target(d, args.duckdb_db)),
        repeats,
        scratch,
        args.timeout,
    )
    return vla, ref


def bench_normalize(args: argparse.Namespace, scratch: Path) -> list[Row]:
    rows = []
    for profile in args.profiles:
        sizes = present_sizes(args, "metadata.json", profile)
        if sizes:
            rows += normalize_profile(args, scratch, profile, sizes)
    return rows


def normalize_profile(
    args: argparse.Namespace, scratch: Path, profile: str, sizes: list[int]
) -> list[Row]:
    rows, rss = [], {}
    for n in sizes:
        vla, ref = normalize_one(args, n, scratch, profile)
        name = f"normalize {label(n)} {profile} JSON"
        rows.append(ratio_row(f"{name} (time)", vla, ref, args.max_ratio))
        if vla.ok:
            rss[n] = vla.rss_mb
            ok = vla.rss_mb <= args.max_rss_mb
            ref_rss = f"{ref.rss_mb:,.0f} MB" if ref and ref.ok else "—"
            measured = f"{vla.rss_mb:,.0f} MB"
            target = f"≤ {args.max_rss_mb:,.0f} MB"
            rows.append(Row(f"{name} peak RSS", measured, ref_rss, measured, target, ok))
    flat = flat_row(rss, args.max_rss_growth)
    flat.benchmark = f"normalize RSS flat ({profile})"
    return [*rows, flat]


def flat_row(rss: dict[int, float], max_growth: float) -> Row:
    """Peak RSS should not grow with the export: largest size vs 1M.

    With nothing above 1M, the growth from the smallest size is shown, not judged.
    """
    values = " / ".join(f"{label(n)}: {mb:,.0f} MB" for n, mb in sorted(rss.items()))
    target = f"≤ {max_growth}x from 1M up"
    if len(rss) < 2:
        return Row("normalize RSS flat", values or "—", "—", "—", target, None)
    top_n = max(rss)
    judged = top_n > 1_000_000 and 1_000_000 in rss
    base_n = 1_000_000 if judged else min(rss)
    growth = rss[top_n] / rss[base_n]
    measured = f"{growth:.2f}x ({label(base_n)}→{label(top_n)})"
    passed = growth <= max_growth if judged else None
    return Row("normalize RSS flat", values, "—", measured, target, passed)


def bench_top(args: argparse.Namespace, scratch: Path) -> list[Row]:
    sizes = present_sizes(args, "metadata.json")
    if not sizes:
        return [Row("top-100 on cache", "—", "—", "—", f"≤ {args.max_top_ratio}x", None)]
    n = sizes[-1]
    export = args.data_dir / f"n{n}" / "metadata.json"
    cache_dir = args.data_dir / f"n{n}" / "vlacache"
    name = f"open + top-100, cached {label(n)}"
    log(f"{name}: building/reusing the cache in {cache_dir}")
    warm = run_child(py(VLA_OPEN, export, cache_dir), args.timeout)
    if not warm.ok:
        log(f"  vlanalyze failed:\n{warm.error}")
        return [ratio_row(name, warm, None, args.max_top_ratio)]
    media = media_parquet(Path(str(warm.out["cache_path"])))
    log(f"{name}: vlanalyze x {args.top_repeats}, duckdb read_parquet x {args.top_repeats}")
    vla = best_of(lambda _: py(VLA_TOP, export, cache_dir), args.top_repeats, scratch)
    ref = best_of(lambda _: py(DUCK_TOP, media), args.top_repeats, scratch)
    return [ratio_row(name, vla, ref, args.max_top_ratio)]


def media_parquet(cache: Path) -> str:
    """The cache's media table: ``media.parquet``, or a ``media/`` folder of parts (a glob)."""
    single = cache / "media.parquet"
    return str(single) if single.exists() else str(cache / "media" / "*.parquet")


def help_argv() -> list[str]:
    script = Path(sys.executable).parent / "vlanalyze"
    if script.exists():
        return [str(script), "--help"]
    return [sys.executable, "-m", "vlanalyze", "--help"]


def bench_help(args: argparse.Namespace, scratch: Path) -> list[Row]:
    """Start-up: wall time of ``vlanalyze --help`` minus that of ``python -c pass``."""
    log(f"start-up: vlanalyze --help x {args.help_repeats}, python -c pass x {args.help_repeats}")
    cli, base = help_argv(), [sys.executable, "-c", "pass"]
    vla = min((run_child(cli) for _ in range(args.help_repeats)), key=lambda r: r.wall)
    ref = min((run_child(base) for _ in range(args.help_repeats)), key=lambda r: r.wall)
    target = f"≤ +{args.max_help_s} s"
    detail: dict[str, object] = {"vlanalyze": vars(vla), "reference": vars(ref), "argv": cli}
    if not vla.ok:
        log(f"  vlanalyze --help failed:\n{vla.error}")
        return [Row("`vlanalyze --help`", "error", fmt_run(ref, "wall"), "—", target, None, detail)]
    extra = vla.wall - ref.wall
    return [
        Row(
            "`vlanalyze --help` vs `python -c pass`",
            fmt_run(vla, "wall"),
            fmt_run(ref, "wall"),
            f"+{extra:.3f} s",
            target,
            extra <= args.max_help_s,
            detail,
        )
    ]


def markdown(rows: list[Row]) -> str:
    verdict = {True: "pass", False: "**FAIL**", None: "n/a"}
    lines = [
        "| benchmark | vlanalyze | reference | measured | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r.benchmark, r.vlanalyze, r.reference, r.measured, r.target, verdict[r.passed]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


BENCHES: dict[str, Callable[[argparse.Namespace, Path], list[Row]]] = {
    "normalize": bench_normalize,
    "top": bench_top,
    "help": bench_help,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path(__file__).parent / "data")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000, 10_000_000],
        help="item counts to use, where <data-dir>/n<size>/ exists",
    )
    p.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    p.add_argument(
        "--profiles",
        nargs="+",
        choices=["mixed", "dense", "sparse"],
        default=["mixed", "dense", "sparse"],
        help="item shapes to normalize (make_synthetic.py --profile), where generated",
    )
    p.add_argument("--repeats", type=int, default=3, help="normalization runs up to 1M (best of)")
    p.add_argument("--big-repeats", type=int, default=1, help="normalization runs above 1M")
    p.add_argument("--top-repeats", type=int, default=7)
    p.add_argument("--help-repeats", type=int, default=10)
    p.add_argument(
        "--duckdb-db",
        choices=["file", "memory"],
        default="file",
        help="DuckDB reference database: a fresh temp file (default) or :memory:",
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    p.add_argument("--max-ratio", type=float, default=1.5)
    p.add_argument("--max-rss-mb", type=float, default=1536)
    p.add_argument("--max-rss-growth", type=float, default=1.25)
    p.add_argument("--max-top-ratio", type=float, default=1.2)
    p.add_argument("--max-help-s", type=float, default=0.25)
    p.add_argument("--json-out", type=Path, help="also write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="_scratch-", dir=args.data_dir))
    rows: list[Row] = []
    try:
        for name in args.only:
            rows += BENCHES[name](args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(markdown(rows))
    if args.json_out:
        meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "args": vars(args)}
        payload = {"meta": meta, "rows": [vars(r) for r in rows]}
        args.json_out.write_text(json.dumps(payload, indent=1, default=str))
    return 1 if any(r.passed is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
