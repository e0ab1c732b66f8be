"""Seeded, order-free randomness for samples and splits, as SQL: a stable hash.

A row's draw is ``hash01(seed, key)``: the first 13 hex digits of
``md5(f"{seed}:{key}")`` read as an integer and divided by 2**52, a number in [0, 1).
It depends on the seed and the key alone: not on row order, not on which other rows
are present. So a split (key = the row's group) never moves a row when rows are added
or removed, and a sample (key = media_id) keeps its order. In Python::

    int(hashlib.md5(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 2**52

Splits give each group the first split whose cumulative fraction exceeds its draw.
Groups are indivisible, so a split's share of rows is a sum of whole groups: it is
within about ``3 * sqrt(f * (1 - f) * sum(n_g**2)) / sum(n_g)`` of its fraction ``f``
(three binomial standard deviations; ``n_g`` the group sizes), e.g. ±1.5 points for
10,000 groups of one.
"""

from __future__ import annotations

from collections.abc import Sequence

from duckdb import DuckDBPyConnection

from vlanalyze.curate._rules import Params

DRAW_DIGITS = 13


def hash01(seed_param: str, key_sql: str) -> str:
    """SQL of the draw in [0, 1) for the key expression ``key_sql`` (a VARCHAR)."""
    digest = f"md5(CAST({seed_param} AS VARCHAR) || ':' || {key_sql})"
    return f"(CAST('0x' || {digest}[1:{DRAW_DIGITS}] AS UBIGINT) / {float(2**52)!r})"


def group_key(kind: str, columns: dict[str, str]) -> str:
    """SQL of a row's group key for ``kind``: ``dup:<group id>``, ``cluster:<cluster_id>``,
    ``video:<video_name>``, and ``media:<media_id>`` for ``none`` and for a row without
    a group (no duplicates issue at the level, no cluster, no video: a group of its own).
    ``columns`` names the SQL of ``media_id``, ``gid``, ``cluster`` and ``video``."""
    own = f"'media:' || {columns['media_id']}"
    tag = {"duplicates": ("dup", "gid"), "cluster": ("cluster", "cluster")}.get(kind)
    tag = tag or {"video": ("video", "video")}.get(kind)
    if tag is None:
        return own
    return f"COALESCE('{tag[0]}:' || {columns[tag[1]]}, {own})"


def split_case(fractions: Sequence[tuple[str, float]], draw: str, p: Params) -> str:
    """SQL CASE giving the split name of a row whose draw is ``draw``."""
    parts, total = [], 0.0
    for name, frac in fractions[:-1]:
        total += frac
        parts.append(f"WHEN {draw} < {p.add(total)} THEN {p.add(name)}")
    return f"CASE {' '.join(parts)} ELSE {p.add(fractions[-1][0])} END"


def quotas(counts: Sequence[tuple[str | None, int]], n: int) -> list[tuple[str | None, int]]:
    """How many rows each stratum gives to a sample of ``n``: proportional, rounded by
    largest remainder (ties by stratum name), so the quotas sum to ``min(n, rows)``."""
    total = sum(c for _, c in counts)
    if n >= total:
        return list(counts)
    exact = [(s, c, n * c / total) for s, c in counts]
    base = {s: int(e) for s, _, e in exact}
    left = n - sum(base.values())
    order = sorted(exact, key=lambda t: (-(t[2] - int(t[2])), t[0] is None, t[0] or ""))
    for s, _, _ in order[:left]:
        base[s] += 1
    return [(s, base[s]) for s, _ in counts]


def leakage(
    con: DuckDBPyConnection,
    table: str,
    groups: str | None,
    group: str,
    level: float | None,
) -> dict[str, object]:
    """Near-duplicate groups (``groups``: media_id, gid at the loosest ``level``) and
    videos whose rows of ``table`` (media_id, split, video) sit in more than one split."""
    dup = 0
    if groups is not None:
        row = con.execute(
            f"SELECT count(*) FROM (SELECT g.gid FROM {table} AS s JOIN {groups} AS g "
            "USING (media_id) GROUP BY 1 HAVING count(DISTINCT s.split) > 1)"
        ).fetchall()
        dup = int(row[0][0])
    vids = con.execute(
        f"SELECT count(*) FROM (SELECT video FROM {table} WHERE video IS NOT NULL "
        "GROUP BY 1 HAVING count(DISTINCT split) > 1)"
    ).fetchall()
    return {
        "group": group,
        "loosest_level": level,
        "duplicate_groups_across_splits": dup,
        "videos_across_splits": int(vids[0][0]),
    }
