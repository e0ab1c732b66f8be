"""Start-up benchmarks: the shell's short queries, as whole processes, against DuckDB's.

A user at a shell runs many short queries on a cached export, so what counts is the
whole process: interpreter, imports, opening the cache, the query, the output. Each line
compares two commands run alternately in the same session (best of N wall times, each a
fresh process), as a ratio. See benchmarks/README.md.

    python benchmarks/make_synthetic.py --items 1000000 --format json
    python benchmarks/bench_startup.py                 # every n<size>[-<profile>]/ present
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench_load import REPO, VLA_OPEN, Row, Run, log, markdown, media_parquet, py, run_child

QUERY = "select media_id, uniqueness_score from media order by uniqueness_score desc limit 100"
DUCK_QUERY = """
import sys
import duckdb
duckdb.connect().execute(sys.argv[1]).fetchall()
"""


def vlanalyze_argv(*args: str | Path) -> list[str]:
    script = Path(sys.executable).parent / "vlanalyze"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "vlanalyze"]
    return [*head, *map(str, args)]


def alternate(a: Sequence[str], b: Sequence[str], repeats: int) -> tuple[Run, Run]:
    """Best wall time of ``repeats`` runs of each, alternating a, b, a, b, ...

    The median of the pairs' ratios (a run of a over the run of b right after it) goes
    into the first run's ``out["paired_median"]``: on a busy machine it moves less than
    the ratio of the bests.
    """
    runs_a: list[Run] = []
    runs_b: list[Run] = []
    for _ in range(repeats):
        runs_a.append(run_child(a))
        runs_b.append(run_child(b))
        if not (runs_a[-1].ok and runs_b[-1].ok):
            break
    best_a, best_b = _best(runs_a), _best(runs_b)
    if best_a.ok and best_b.ok:
        ratios = [x.wall / y.wall for x, y in zip(runs_a, runs_b, strict=True)]
        best_a.out["paired_median"] = statistics.median(ratios)
    return best_a, best_b


def _best(runs: list[Run]) -> Run:
    """The fastest run, or the first failure."""
    failed = [r for r in runs if not r.ok]
    return failed[0] if failed else min(runs, key=lambda r: r.wall)


def process_row(name: str, vla: Run, ref: Run, target: float, detail: dict[str, object]) -> Row:
    cell = {True: lambda r: f"{r.wall:.3f} s, {r.rss_mb:,.0f} MB", False: lambda r: "error"}
    measured, passed = "—", None
    if vla.ok and ref.ok:
        ratio = vla.wall / ref.wall
        paired = float(str(vla.out.get("paired_median", ratio)))
        cpu = vla.cpu_s / ref.cpu_s if ref.cpu_s else float("nan")
        measured = f"{ratio:.2f}x (paired median {paired:.2f}x, CPU {cpu:.2f}x)"
        passed = ratio <= target
    else:
        log(f"  failed:\n{vla.error or ref.error}")
    return Row(name, cell[vla.ok](vla), cell[ref.ok](ref), measured, f"≤ {target}x", passed, detail)


def exports(args: argparse.Namespace) -> list[Path]:
    """The metadata.json of every data folder asked for that exists."""
    found = []
    for size in args.sizes:
        for profile in args.profiles:
            folder = args.data_dir / (f"n{size}" if profile == "mixed" else f"n{size}-{profile}")
            if (folder / "metadata.json").exists():
                found.append(folder / "metadata.json")
    return found


def bench_sql(args: argparse.Namespace, export: Path) -> list[Row]:
    cache_dir = export.parent / "vlacache"
    name = export.parent.name
    log(f"{name}: building/reusing the cache in {cache_dir}")
    warm = run_child(py(VLA_OPEN, export, cache_dir), args.timeout)
    if not warm.ok:
        log(f"  vlanalyze failed:\n{warm.error}")
        return []
    media = media_parquet(Path(str(warm.out["cache_path"])))
    source = "read_parquet('" + media.replace("'", "''") + "')"
    ref = py(DUCK_QUERY, QUERY.replace("from media", f"from {source}"))
    rows = []
    for fmt in args.formats:
        vla = vlanalyze_argv("sql", export, "--cache-dir", cache_dir, QUERY, "--format", fmt)
        log(f"{name}: sql --format {fmt} x {args.repeats}, alternating with duckdb")
        a, b = alternate(vla, ref, args.repeats)
        detail: dict[str, object] = {"vlanalyze": vars(a), "reference": vars(b), "argv": vla}
        title = f"`sql ... --format {fmt}` on cached {name}"
        rows.append(process_row(title, a, b, args.max_ratio, detail))
    if args.info:
        vla = vlanalyze_argv("info", export, "--cache-dir", cache_dir, "--json")
        log(f"{name}: info --json x {args.repeats} (no target: it runs 5 queries)")
        a, b = alternate(vla, ref, args.repeats)
        detail = {"vlanalyze": vars(a), "reference": vars(b), "argv": vla}
        row = process_row(f"`info --json` on cached {name}", a, b, args.max_ratio, detail)
        row.target, row.passed = "—", None
        rows.append(row)
    return rows


def bench_help(args: argparse.Namespace) -> Row:
    log(f"start-up: vlanalyze --help x {args.repeats}, python -c pass x {args.repeats}")
    a, b = alternate(vlanalyze_argv("--help"), [sys.executable, "-c", "pass"], args.repeats)
    target = f"≤ +{args.max_help_s} s"
    detail: dict[str, object] = {"vlanalyze": vars(a), "reference": vars(b)}
    if not (a.ok and b.ok):
        return Row("`vlanalyze --help`", "error", "—", "—", target, None, detail)
    extra = a.wall - b.wall
    cells = (f"{a.wall:.3f} s", f"{b.wall:.3f} s", f"+{extra:.3f} s")
    name = "`vlanalyze --help` vs `python -c pass`"
    return Row(name, *cells, target, extra <= args.max_help_s, detail)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path(__file__).parent / "data")
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    p.add_argument(
        "--profiles", nargs="+", default=["mixed", "dense", "sparse"], help="data folders to use"
    )
    p.add_argument("--formats", nargs="+", default=["csv"], help="sql output formats to time")
    p.add_argument("--info", action="store_true", help="also time `vlanalyze info --json`")
    p.add_argument("--repeats", type=int, default=15, help="runs of each command (best of)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to build a cache")
    p.add_argument("--max-ratio", type=float, default=1.3)
    p.add_argument("--max-help-s", type=float, default=0.25)
    p.add_argument("--json-out", type=Path, help="also write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows: list[Row] = []
    for export in exports(args):
        rows += bench_sql(args, export)
    rows.append(bench_help(args))
    print(markdown(rows))
    if args.json_out:
        meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args), "repo": str(REPO)}
        payload = {"meta": meta, "rows": [vars(r) for r in rows]}
        args.json_out.write_text(json.dumps(payload, indent=1, default=str))
    log("commands: " + "; ".join(shlex.join(map(str, r.detail.get("argv", []))) for r in rows))
    return 1 if any(r.passed is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
