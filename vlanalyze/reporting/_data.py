"""What a report shows, as small tables: every aggregation is one DuckDB query over the
export's views, bounded by a top-K, so a 10-million-row export gives small answers fast.

Values from the data (labels, ids, thresholds) reach SQL only as bound parameters;
no name from the data is ever put into SQL text. Nothing here draws or writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from duckdb import DuckDBPyConnection

from vlanalyze.curate._rules import SOURCE_PRIORITY  # select's primary label, the same SQL
from vlanalyze.errors import SelectionError

HIST_BINS = 20
#: Which duplicate is kept, as a SQL ORDER BY: the curate layer's default keep policy
#: ("uniqueness": the highest uniqueness_score, NULL last, ties by media_id).
KEEP_ORDER = "uniqueness_score DESC NULLS LAST, media_id"

_IMAGE_DUPS = "issue_type = 'duplicates' AND object_id IS NULL"


@dataclass(frozen=True)
class Overview:
    """The overview section's numbers."""

    counts: dict[str, int]
    issues: pl.DataFrame  # issue_type, media (items carrying it), rows
    labels: pl.DataFrame  # label, media
    label_kinds: int  # how many distinct labels in all
    histogram: pl.DataFrame  # lo, hi, media (uniqueness_score bins)
    unscored: int  # media without a uniqueness_score
    levels: list[float]  # image-level duplicate thresholds, loosest first


def _frame(
    con: DuckDBPyConnection, sql: str, params: dict[str, object] | None = None
) -> pl.DataFrame:
    rel = con.sql(sql, params=params)
    assert rel is not None
    frame: pl.DataFrame = rel.pl()
    return frame


def levels(con: DuckDBPyConnection) -> list[float]:
    """The image-level duplicate thresholds present, loosest (lowest) first."""
    rows = con.execute(
        f"SELECT DISTINCT duplicate_threshold FROM issues WHERE {_IMAGE_DUPS} "
        "AND duplicate_threshold IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [float(r[0]) for r in rows]


def resolve_level(found: list[float], value: float | str | None) -> float | None:
    """The export's own level for ``value`` (a number, ``min``, ``max``; None: the loosest).

    Raises:
        SelectionError: the export has no such level (the message lists them).
    """
    if not found:
        if value is None:
            return None
        raise SelectionError(
            "this export has no image-level duplicates issues",
            hint="leave out dedupe to report without duplicate groups",
        )
    if value is None or value == "min":
        return found[0]
    if value == "max":
        return found[-1]
    try:
        wanted = float(value)
    except ValueError:
        wanted = float("nan")
    for level in found:
        if abs(level - wanted) < 1e-9:
            return level
    shown = ", ".join(f"{x:g}" for x in found)
    raise SelectionError(
        f"no duplicate threshold {value} in this export",
        hint=f"levels: {shown} (min = {found[0]:g}, max = {found[-1]:g})",
    )


def overview(con: DuckDBPyConnection, counts: dict[str, int], *, top_labels: int) -> Overview:
    """Counts per table, items per issue type, the top labels, the score histogram."""
    issues = _frame(
        con,
        "SELECT issue_type, count(DISTINCT media_id) AS media, count(*) AS rows FROM issues "
        "WHERE object_id IS NULL GROUP BY 1 ORDER BY media DESC, issue_type",
    )
    labels = _frame(
        con,
        # distinct (label, image) pairs first: a label from two sources counts once, and
        # this measured faster than count(DISTINCT) on 6.5M label rows
        "SELECT label, count(*) AS media FROM (SELECT DISTINCT category_name AS label, "
        "media_id FROM labels WHERE category_name IS NOT NULL) GROUP BY 1 "
        "ORDER BY media DESC, label LIMIT $k",
        {"k": top_labels},
    )
    kinds = con.execute("SELECT count(DISTINCT category_name) FROM labels").fetchall()
    return Overview(
        counts=counts,
        issues=issues,
        labels=labels,
        label_kinds=int(kinds[0][0]),
        histogram=histogram(con, "media"),
        unscored=int(
            con.execute("SELECT count(*) FROM media WHERE uniqueness_score IS NULL").fetchall()[0][
                0
            ]
        ),
        levels=levels(con),
    )


def histogram(con: DuckDBPyConnection, table: str) -> pl.DataFrame:
    """``lo, hi, media``: uniqueness scores of ``table`` (our own view name) in 20 bins
    over [0, 1] (scores outside are clamped into the end bins); every bin listed."""
    counts = dict(
        con.execute(
            f"SELECT least(greatest(floor(uniqueness_score * {HIST_BINS}), 0), "
            f"{HIST_BINS - 1})::INTEGER AS b, count(*) FROM {table} "
            "WHERE uniqueness_score IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    return pl.DataFrame(
        {
            "lo": [b / HIST_BINS for b in range(HIST_BINS)],
            "hi": [(b + 1) / HIST_BINS for b in range(HIST_BINS)],
            "media": [int(counts.get(b, 0)) for b in range(HIST_BINS)],
        }
    )


@dataclass(frozen=True)
class Groups:
    """Groups (duplicate groups or clusters), biggest first, with their shown members."""

    total: int  # how many groups exist (with 2+ members for duplicates)
    sizes: pl.DataFrame  # gid, size: the shown groups, in order
    members: pl.DataFrame  # gid, media_id, pos (0 = first shown; for duplicates: kept)


def duplicate_groups(con: DuckDBPyConnection, level: float, *, groups: int, members: int) -> Groups:
    """The ``groups`` biggest duplicate groups at ``level`` (2+ members, ties by group
    id), each with its first ``members`` in keep order: position 0 is the one the keep
    policy keeps (see :data:`KEEP_ORDER`)."""
    base = (
        "SELECT DISTINCT i.duplicate_group_id AS gid, i.media_id, m.uniqueness_score "
        f"FROM issues AS i JOIN media AS m USING (media_id) WHERE i.{_IMAGE_DUPS} "
        "AND i.duplicate_threshold = $level"
    )
    return _groups(con, base, {"level": level}, groups=groups, members=members, least=2)


def clusters(con: DuckDBPyConnection, *, groups: int, members: int) -> Groups:
    """The ``groups`` largest clusters (ties by id), each with its ``members`` most
    unique items (ties by media_id)."""
    base = (
        "SELECT cluster_id AS gid, media_id, uniqueness_score FROM media "
        "WHERE cluster_id IS NOT NULL"
    )
    return _groups(con, base, {}, groups=groups, members=members, least=1)


def _groups(
    con: DuckDBPyConnection,
    base: str,
    params: dict[str, object],
    *,
    groups: int,
    members: int,
    least: int,
) -> Groups:
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vla_g AS {base}", params)
    total = con.execute(
        "SELECT count(*) FROM (SELECT gid FROM _vla_g GROUP BY gid HAVING count(*) >= $n)",
        {"n": least},
    ).fetchall()
    sizes = _frame(
        con,
        "SELECT gid, count(*) AS size FROM _vla_g GROUP BY gid HAVING count(*) >= $n "
        "ORDER BY size DESC, gid LIMIT $k",
        {"n": least, "k": groups},
    )
    con.register("_vla_sizes", sizes.to_arrow())
    shown = _frame(
        con,
        "SELECT gid, media_id, pos FROM (SELECT g.gid, g.media_id, row_number() OVER "
        f"(PARTITION BY g.gid ORDER BY {KEEP_ORDER}) - 1 AS pos FROM _vla_g AS g "
        "JOIN _vla_sizes USING (gid)) WHERE pos < $m ORDER BY gid, pos",
        {"m": members},
    )
    con.unregister("_vla_sizes")
    con.execute("DROP TABLE _vla_g")
    return Groups(total=int(total[0][0]), sizes=sizes, members=shown)


def items(con: DuckDBPyConnection, media_ids: list[str], *, labels: int = 5) -> pl.DataFrame:
    """``media_id, file_path, image_path, url, uniqueness_score, labels`` (up to
    ``labels`` names, most authoritative source first) of the given media."""
    if not media_ids:
        return pl.DataFrame(
            schema={
                "media_id": pl.String,
                "file_path": pl.String,
                "image_path": pl.String,
                "url": pl.String,
                "uniqueness_score": pl.Float64,
                "labels": pl.List(pl.String),
            }
        )
    con.register("_vla_ids", pl.DataFrame({"media_id": media_ids}).unique().to_arrow())
    try:
        return _frame(
            con,
            "WITH l AS (SELECT media_id, list(DISTINCT category_name ORDER BY category_name) "
            "AS labels FROM labels WHERE media_id IN (SELECT media_id FROM _vla_ids) "
            "GROUP BY media_id) "
            "SELECT m.media_id, m.file_path, m.image_path, m.url, m.uniqueness_score, "
            "COALESCE(l.labels[1:$n], []) AS labels FROM media AS m "
            "JOIN _vla_ids USING (media_id) LEFT JOIN l USING (media_id)",
            {"n": labels},
        )
    finally:
        con.unregister("_vla_ids")


@dataclass(frozen=True)
class SelectionStats:
    """The selection section's numbers."""

    rows: int
    missing: int  # rows whose media_id is not in the export
    splits: pl.DataFrame  # split, media (empty without a split column)
    per_split: pl.DataFrame  # split, label, media: top labels per split, the rest "(other)"
    label_source: str  # which labels per_split counts
    leakage: dict[str, object] | None  # with a split
    grid: list[str]  # media ids shown, in rank order


def selection_stats(
    con: DuckDBPyConnection, rows: pl.DataFrame, *, grid: int, top_labels: int
) -> SelectionStats:
    """Split sizes, labels per split, leakage and the shown images of a selection."""
    cols = [c for c in ("media_id", "split", "label", "rank") if c in rows.columns]
    ordered = rows.select(cols).with_row_index("_vla_row")
    con.register("_vla_sel_in", ordered.to_arrow())
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _vla_sel AS SELECT s.*, m.video_name FROM _vla_sel_in "
            "AS s JOIN media AS m USING (media_id)"
        )
    finally:
        con.unregister("_vla_sel_in")
    kept = int(con.execute("SELECT count(*) FROM _vla_sel").fetchall()[0][0])
    order = "rank NULLS LAST, media_id" if "rank" in cols else "_vla_row"
    shown = [
        str(r[0])
        for r in con.execute(
            f"SELECT media_id FROM _vla_sel ORDER BY {order} LIMIT $k", {"k": grid}
        ).fetchall()
    ]
    has_split = "split" in cols
    splits = pl.DataFrame(schema={"split": pl.String, "media": pl.Int64})
    per_split = pl.DataFrame(schema={"split": pl.String, "label": pl.String, "media": pl.Int64})
    leak: dict[str, object] | None = None
    source = ""
    if has_split:
        splits = _frame(
            con, "SELECT split, count(*) AS media FROM _vla_sel GROUP BY 1 ORDER BY media DESC"
        )
        per_split, source = _labels_per_split(con, "label" in cols, top_labels)
        leak = _leakage(con)
    con.execute("DROP TABLE _vla_sel")
    return SelectionStats(rows.height, rows.height - kept, splits, per_split, source, leak, shown)


def _labels_per_split(
    con: DuckDBPyConnection, has_label: bool, top: int
) -> tuple[pl.DataFrame, str]:
    if has_label:
        pairs = "SELECT split, label, media_id FROM _vla_sel"
        source = "the selection's label column"
    else:
        # one label per image, as select's "label" column: the most authoritative source
        # (User, Model, Visual Layer, others), ties by name
        pairs = (
            "SELECT s.split, l.label, s.media_id FROM _vla_sel AS s LEFT JOIN (SELECT "
            f"media_id, first(category_name ORDER BY {SOURCE_PRIORITY}, category_name) AS "
            "label FROM labels WHERE media_id IN (SELECT media_id FROM _vla_sel) "
            "GROUP BY media_id) AS l USING (media_id)"
        )
        source = (
            "each image's primary label (User, then Model, then Visual Layer labels first; "
            "ties by name)"
        )
    frame = _frame(
        con,
        f"WITH p AS ({pairs}), t AS (SELECT label FROM p WHERE label IS NOT NULL GROUP BY 1 "
        "ORDER BY count(*) DESC, label LIMIT $k) "
        "SELECT split, shown AS label, count(*) AS media FROM (SELECT split, media_id, "
        "CASE WHEN label IN (SELECT label FROM t) THEN label END AS shown FROM p) "
        "GROUP BY split, shown ORDER BY split, shown IS NULL, media DESC, shown",
        {"k": top},
    )
    return frame, source


def _leakage(con: DuckDBPyConnection) -> dict[str, object]:
    """Near-duplicate groups (loosest level) and videos with rows in 2+ splits."""
    found = levels(con)
    dup = 0
    if found:
        dup = int(
            con.execute(
                "SELECT count(*) FROM (SELECT i.duplicate_group_id FROM _vla_sel AS s "
                f"JOIN issues AS i USING (media_id) WHERE i.{_IMAGE_DUPS} "
                "AND i.duplicate_threshold = $level GROUP BY 1 "
                "HAVING count(DISTINCT s.split) > 1)",
                {"level": found[0]},
            ).fetchall()[0][0]
        )
    videos = con.execute(
        "SELECT count(*) FROM (SELECT video_name FROM _vla_sel WHERE video_name IS NOT NULL "
        "GROUP BY 1 HAVING count(DISTINCT split) > 1)"
    ).fetchall()
    return {
        "loosest_level": found[0] if found else None,
        "duplicate_groups_across_splits": dup,
        "videos_across_splits": int(videos[0][0]),
    }
