"""Where does normalization time go? One cold ``open_export`` of a synthetic export, with
every DuckDB statement timed and, with ``--operators``, DuckDB's own profile (the JSON
form of EXPLAIN ANALYZE) summed per operator for every statement kind.

Every ``duckdb.connect`` in the process is wrapped (whatever module calls it), so the
numbers come from the library as it is, with no change to it. Statements are grouped
by what they do: the parse (``read_json`` into a table), the unnest of the metadata
items, each tidy table's ``COPY``, the unknown-type check. Times are per thread (two
workers, each parsing and writing a batch of its own while the other does the same).

    python benchmarks/profile_normalize.py benchmarks/data/n200000-dense/metadata.json
    python benchmarks/profile_normalize.py EXPORT --operators   # + DuckDB operator times
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb

from vlanalyze.query._sql import quote_literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_real_connect = duckdb.connect
TIMES: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)  # (wall, CPU)
OPERATORS: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
PROFILES: list[tuple[str, Path]] = []
LOCK = threading.Lock()
PROFILE_DIR = Path(tempfile.mkdtemp(prefix="vla-profile-"))


def kind(sql: str) -> str:
    """What a statement does, from its text."""
    text = " ".join(sql.split())
    if "json_keys" in text:
        return "parse: exact unknown-key scan (json_keys)"
    if "read_json" in text and text.startswith("CREATE TABLE"):
        return "parse: read_json -> batch table"
    if "read_json" in text:
        return "parse: raw items (unknown item types)"
    if "unnest(metadata_items)" in text and "TEMP TABLE items" in text:
        return "write: unnest metadata_items"
    if text.startswith("COPY"):
        match = re.search(r"TO '[^']*/([a-z_]+)/part-\d+\.parquet'", text)
        return f"write: COPY {match.group(1) if match else '?'}"
    if text.startswith("SELECT count(*) FROM read_parquet"):
        return "count rows"
    if "unknown" in text.lower() or "NOT IN" in text:
        return "write: unknown-type check"
    return "other (SET, views, DROP)"


class Timed:
    """A DuckDB connection whose every ``execute`` is timed (and profiled, if asked)."""

    operators = False

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        if self.operators:
            con.execute("SET enable_profiling = 'json'")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def cursor(self) -> Timed:
        return Timed(self._con.cursor())

    def __enter__(self) -> Timed:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        what = kind(sql)
        if self.operators and not sql.lstrip().upper().startswith(("SET", "DROP", "PRAGMA")):
            # Each statement's profile goes to its own file, read at the end (a SET
            # after the statement would discard a result not fetched yet).
            output = PROFILE_DIR / f"{threading.get_ident()}-{time.perf_counter_ns()}.json"
            self._con.execute(f"SET profiling_output = {quote_literal(str(output))}")
            with LOCK:
                PROFILES.append((what, output))
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            # With threads = 1 (as the normalizer sets) DuckDB runs a statement on the
            # calling thread: its CPU time is the statement's, however busy the machine.
            spent = (time.perf_counter() - t0, time.thread_time() - c0)
            with LOCK:
                TIMES[(threading.current_thread().name, what)].append(spent)


def _add_operators(what: str, output: Path) -> None:
    try:
        tree = json.loads(output.read_text())
    except (OSError, ValueError):
        return
    # DuckDB 2.x: {"operator": [tree]}, nodes {name, timing, extra_info, children}
    stack = list(tree.get("operator", tree.get("children", [])))
    while stack:
        node = stack.pop()
        name = str(node.get("name") or node.get("operator_name") or "?").strip()
        function = (node.get("extra_info") or {}).get("Function")
        if function:
            name = f"{name} ({function})"
        OPERATORS[what][name] += float(node.get("timing", node.get("operator_timing", 0.0)))
        stack.extend(node.get("children", []))


def timed_connect(*args: Any, **kwargs: Any) -> Timed:
    return Timed(_real_connect(*args, **kwargs))


def report(wall: float, cpu: float) -> None:
    print(f"wall {wall:.2f} s, process CPU {cpu:.2f} s\n")
    threads = sorted({t for t, _ in TIMES})
    print("| thread | statement kind | count | wall s | CPU s | share of thread CPU |")
    print("|---|---|---|---|---|---|")
    for thread in threads:
        name = "worker 2" if thread.startswith("ThreadPool") else thread
        rows = {w: v for (t, w), v in TIMES.items() if t == thread}
        busy = sum(c for v in rows.values() for _, c in v)
        walls = sum(w for v in rows.values() for w, _ in v)
        for what, values in sorted(rows.items(), key=lambda kv: -sum(c for _, c in kv[1])):
            wall_s, cpu_s = sum(w for w, _ in values), sum(c for _, c in values)
            share = cpu_s / busy if busy else 0.0
            print(f"| {name} | {what} | {len(values)} | {wall_s:.2f} | {cpu_s:.2f} | {share:.0%} |")
        print(f"| {name} | **all DuckDB statements** | | {walls:.2f} | {busy:.2f} | |")
    if OPERATORS:
        print("\nDuckDB operator time (s, summed over threads) per statement kind:\n")
        for what, ops in sorted(OPERATORS.items(), key=lambda kv: -sum(kv[1].values())):
            top = sorted(ops.items(), key=lambda kv: -kv[1])[:5]
            print(f"* {what}: " + ", ".join(f"{name} {sec:.2f}" for name, sec in top))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("export", type=Path, help="metadata.json (or .parquet) to normalize")
    p.add_argument("--operators", action="store_true", help="also DuckDB's per-operator times")
    args = p.parse_args(argv)
    Timed.operators = args.operators
    duckdb.connect = timed_connect  # type: ignore[assignment]
    threading.current_thread().name = "worker 1 (main)"

    import resource

    import vlanalyze as vla

    open_export = vla.open_export
    cache = Path(tempfile.mkdtemp(prefix="vla-profile-cache-", dir=args.export.parent))
    try:
        t0 = time.perf_counter()
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        open_export(args.export, cache_dir=cache / "c").close()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - t0
        for what, output in PROFILES:
            _add_operators(what, output)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(PROFILE_DIR, ignore_errors=True)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    print(f"## {args.export.parent.name}\n")
    report(wall, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
