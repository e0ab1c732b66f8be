"""The selection pipeline: each rule, in its fixed order, as one DuckDB step.

Order: filters -> issue gates -> dedupe -> per-cluster cap -> per-video cap -> top ->
sample -> split. Every step reads the rows the previous one kept (a view ``c<k>``) and
writes a temp table ``a<k>``: those rows, each with the ``reason`` it was dropped (NULL
when kept) and, for dedupe, the ``dup`` it duplicates. So each step's rows in = rows out
+ rows removed, and the dropped rows (when asked for) go to the ``removed`` table.

Every ranking ends with ``media_id``: the same export and rules give the same rows in
the same order. Only :mod:`vlanalyze.curate._select` uses this module.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from duckdb import DuckDBPyConnection

from vlanalyze.curate import _split as sp
from vlanalyze.curate._recipe import Recipe, parse_group
from vlanalyze.curate._rules import (
    KEEP_KEY,
    Catalog,
    Params,
    duplicate_groups,
    duplicate_members,
    filters,
    gates,
    primary_labels,
    rank_order,
)


class Pipeline:
    """Runs a recipe's steps on one connection; records the funnel as it goes."""

    def __init__(
        self,
        con: DuckDBPyConnection,
        recipe: Recipe,
        *,
        catalog: Catalog,
        rows: int,
        keep_removed: bool,
    ) -> None:
        self.con = con
        self.r = recipe
        self.cat = catalog
        self.keep_removed = keep_removed
        self.funnel: list[dict[str, Any]] = []
        self.k = 0
        self.cur = "media"
        self.rows = rows  # rows of media (the export's count: no scan)
        self.leakage: dict[str, object] | None = None
        self.group_tables: dict[float, str] = {}
        self.split_params = Params()
        self.split_join, self.split_case, self.split_label = "", "", ""
        self.cols = _columns(recipe)
        # with the default ranking, rv is the uniqueness score: no second column for it
        self.uniq = "rv" if recipe.by == "uniqueness_score" else "uniq"

    # --- plumbing -------------------------------------------------------------------

    @property
    def base(self) -> str:
        return ", ".join(self.cols)

    def _step(self, names: list[str], sql: str, p: Params, kept: str | None = None) -> None:
        """Materialize the next step from ``sql`` (rows in, with ``reason`` NULL for the
        kept ones, ``dup`` and ``step_no``); ``kept``: a faster query of the kept rows
        alone, used when the removed rows are not recorded."""
        k = self.k + 1
        if not self.keep_removed and len(names) == 1:
            kept = kept or f"SELECT {self.base} FROM ({sql}) WHERE reason IS NULL"
            self.con.execute(f"CREATE TEMP TABLE a{k} AS {kept}", p.used_by(kept))
            out = int(self.con.execute(f"SELECT count(*) FROM a{k}").fetchall()[0][0])
            self._advance(k, f"a{k}")
            self._count(names, self.rows, {0: self.rows - out})
            return
        self.con.execute(f"CREATE TEMP TABLE a{k} AS {sql}", p.used_by(sql))
        counts = self.con.execute(
            f"SELECT step_no, count(*) FILTER (reason IS NOT NULL), count(*) FROM a{k} GROUP BY 1"
        ).fetchall()
        rows_in = sum(int(r[2]) for r in counts)
        self._count(names, rows_in, {int(r[0]): int(r[1]) for r in counts})
        if self.keep_removed:
            self.con.execute(
                f"INSERT INTO removed SELECT media_id, $offset + step_no, $names[step_no + 1], "
                f"reason, dup FROM a{k} WHERE reason IS NOT NULL",
                {"offset": len(self.funnel) - len(names), "names": names},
            )
        self.con.execute(f"CREATE VIEW c{k} AS SELECT {self.base} FROM a{k} WHERE reason IS NULL")
        self._advance(k, f"c{k}")

    def _count(self, names: list[str], rows_in: int, removed: dict[int, int]) -> None:
        for i, name in enumerate(names):
            out = rows_in - removed.get(i, 0)
            self.funnel.append(
                {"step": name, "rows_in": rows_in, "rows_out": out, "removed": rows_in - out}
            )
            rows_in = out
        self.rows = rows_in

    def _advance(self, k: int, cur: str) -> None:
        """Make ``cur`` the current rows; drop the previous step's table and view."""
        if self.k:
            self.con.execute(f"DROP VIEW IF EXISTS c{self.k}")
            self.con.execute(f"DROP TABLE a{self.k}")
        self.k, self.cur = k, cur

    def groups(self, level: float) -> str:
        """A FROM item of ``media_id, gid`` at ``level`` for the current rows: from the
        memberships dedupe read at that level, else read once (the split and the
        leakage report share it)."""
        ids = f"SELECT media_id FROM {self.cur}"
        if level in self.group_tables:
            return (
                f"(SELECT media_id, min(gid) AS gid FROM {self.group_tables[level]} "
                f"WHERE media_id IN ({ids}) GROUP BY media_id)"
            )
        table = f"groups_{len(self.group_tables)}"
        p = Params()
        self.con.execute(
            f"CREATE TEMP TABLE {table} AS {duplicate_groups(level, p, ids)}", p.values
        )
        self.group_tables[level] = table
        return table

    def run(self) -> None:
        """Every step the recipe asks for, in the fixed order."""
        if self.keep_removed:
            self.con.execute(
                "CREATE TEMP TABLE removed (media_id VARCHAR, step_no INTEGER, step VARCHAR, "
                "reason VARCHAR, duplicate_of VARCHAR)"
            )
        self.first()
        if self.r.dedupe is not None:
            self.dedupe()
        for name, column, cap in (
            ("per_cluster", "cluster", self.r.per_cluster),
            ("per_video", "video", self.r.per_video),
        ):
            if cap is not None:
                self.cap(name, column, cap)
        if self.r.top is not None:
            self.top(self.r.top)
        if self.r.sample is not None:
            self.sample(self.r.sample)
        if self.r.split:
            self.split()

    # --- the steps --------------------------------------------------------------------

    def _base_columns(self) -> str:
        """The SELECT list of the step columns, read from ``media AS m``."""
        rv = self.cat.column(self.r.by, "ranking column")
        strat = "CAST(NULL AS VARCHAR)"
        if self.r.stratify is not None and self.r.stratify != "label":
            strat = f"CAST(m.{self.cat.column(self.r.stratify, 'stratify column')} AS VARCHAR)"
        exprs = {
            "media_id": "m.media_id",
            "rv": f"m.{rv}",
            "uniq": "m.uniqueness_score",  # only when --by is another column
            "px": "CAST(m.width AS BIGINT) * m.height",
            "fpath": "m.file_path",
            "cluster": "m.cluster_id",
            "video": "m.video_name",
            "strat": strat,
        }
        return ", ".join(f"{exprs[c]} AS {c}" for c in self.cols)

    def first(self) -> None:
        """Filters and issue gates in one pass over ``media``: two funnel steps."""
        p = Params()
        cols = self._base_columns()
        conds: list[tuple[int, str, str]] = []
        names: list[str] = []
        for name, rules in (
            ("filters", filters(self.con, self.cat, self.r, p)),
            ("issues", gates(self.cat, self.r, p)),
        ):
            if rules:
                conds += [(len(names), r, c) for r, c in rules]
                names.append(name)
        if not self.keep_removed and conds:
            # Kept rows only, one step per funnel line: a WHERE lets DuckDB anti-join.
            for i, name in enumerate(names):
                where = " AND ".join(f"COALESCE({c}, FALSE)" for s, _, c in conds if s == i)
                source = "media" if i == 0 else f"(SELECT * FROM {self.cur})"
                select = cols if i == 0 else f"m.{', m.'.join(self.cols)}"
                kept = f"SELECT {select} FROM {source} AS m WHERE {where}"
                self._step([name], kept, p, kept)
            return
        reason, step_no = "NULL", "0"
        if conds:
            whens = [(f"WHEN NOT COALESCE({c}, FALSE)", r, s) for s, r, c in conds]
            reason = "CASE " + " ".join(f"{w} THEN {p.add(r)}" for w, r, _ in whens) + " END"
            step_no = "CASE " + " ".join(f"{w} THEN {s}" for w, _, s in whens) + " ELSE 0 END"
        sql = (
            f"SELECT {cols}, {reason} AS reason, CAST(NULL AS VARCHAR) AS dup, "
            f"{step_no} AS step_no FROM media AS m"
        )
        self._step(names, sql, p)

    def dedupe(self) -> None:
        """One survivor per duplicate group at the level, by the keep policy.

        A hash aggregate (arg_min of the policy's key, which ends with media_id) picks each
        group's survivor: faster than a window over every row, and as deterministic.
        An image in no group at the level is kept; one in several (real exports have
        none) is kept if it survives one of them.
        """
        assert self.r.dedupe is not None
        p = Params()
        level = self.cat.level(self.r.dedupe)
        labelled, join = self._labelled(p)
        key = KEEP_KEY[self.r.keep].format(u=self.uniq)
        members = f"members_{len(self.group_tables)}"
        mp = Params()
        self.con.execute(
            f"CREATE TEMP TABLE {members} AS {duplicate_members(level, mp)}", mp.values
        )
        self.group_tables[level] = members  # the split and the leakage report reuse it
        with_ = (
            f"WITH j AS (SELECT c.*, {labelled} AS labelled, d.gid FROM {self.cur} AS c {join} "
            f"JOIN {members} AS d ON d.media_id = c.media_id), "
            f"s AS (SELECT gid, arg_min(media_id, {key}) AS sv FROM j GROUP BY gid) "
        )
        lost = (
            f"{with_} SELECT j.media_id, min(s.sv) AS dup FROM j JOIN s USING (gid) "
            "WHERE j.media_id NOT IN (SELECT sv FROM s) GROUP BY j.media_id"
        )
        reason = p.add(f"duplicate at {level:g} (keep {self.r.keep})")
        sql = (
            f"SELECT c.*, CASE WHEN l.dup IS NOT NULL THEN {reason} END AS reason, l.dup, "
            f"0 AS step_no FROM {self.cur} AS c LEFT JOIN ({lost}) AS l USING (media_id)"
        )
        kept = (
            f"{with_} SELECT * FROM {self.cur} WHERE media_id IN (SELECT sv FROM s) "
            f"OR media_id NOT IN (SELECT media_id FROM {members})"
        )
        self._step(["dedupe"], sql, p, kept)

    def _labelled(self, p: Params) -> tuple[str, str]:
        """(expression, join) telling whether a row ``c`` has an image label (of
        ``label_source``), for ``keep="labelled"``; ("FALSE", "") otherwise."""
        if self.r.keep != "labelled":
            return "FALSE", ""
        src = "TRUE" if self.r.label_source is None else f"source = {p.add(self.r.label_source)}"
        join = f"LEFT JOIN (SELECT DISTINCT media_id AS lid FROM labels WHERE {src}) AS lb "
        return "lb.lid IS NOT NULL", join + "ON lb.lid = c.media_id"

    def cap(self, name: str, column: str, n: int) -> None:
        """At most ``n`` rows per cluster/video, the best by the ranking; rows without
        a cluster/video are not capped."""
        p = Params()
        over = f"PARTITION BY {column} ORDER BY {rank_order(self.r.ascending)}"
        reason = p.add(f"{name.replace('_', '-')} cap {n}")
        sql = (
            f"SELECT {self.base}, CASE WHEN {column} IS NOT NULL AND row_number() OVER ({over}) "
            f"> {p.add(n)} THEN {reason} END AS reason, CAST(NULL AS VARCHAR) AS dup, "
            f"0 AS step_no FROM {self.cur}"
        )
        self._step([name], sql, p)

    def top(self, n: int) -> None:
        p = Params()
        order = "ascending" if self.r.ascending else "descending"
        reason = p.add(f"not in top {n} by {self.r.by} ({order})")
        sql = (
            f"SELECT {self.base}, CASE WHEN row_number() OVER (ORDER BY "
            f"{rank_order(self.r.ascending)}) > {p.add(n)} THEN {reason} END AS reason, "
            f"CAST(NULL AS VARCHAR) AS dup, 0 AS step_no FROM {self.cur}"
        )
        kept = (
            f"SELECT {self.base} FROM {self.cur} ORDER BY {rank_order(self.r.ascending)} "
            f"LIMIT {p.add(n)}"
        )
        self._step(["top"], sql, p, kept)

    def sample(self, n: int) -> None:
        """A seeded sample of ``n``, proportional per stratum (see _split.quotas)."""
        p = Params()
        source = self.cur
        if self.r.stratify == "label":
            source = (
                f"(SELECT c.* REPLACE (pl.label AS strat) FROM {self.cur} AS c LEFT JOIN "
                f"({primary_labels(self.r, p, f'SELECT media_id FROM {self.cur}')}) AS pl "
                "USING (media_id))"
            )
        counts = self.con.execute(
            f"SELECT strat, count(*) FROM {source} AS s GROUP BY 1 ORDER BY 1 NULLS LAST",
            p.values,
        ).fetchall()
        quota = sp.quotas([(s, int(c)) for s, c in counts], n)
        self.con.register(
            "_vla_quota",
            pa.table(
                {"qs": [s for s, _ in quota], "quota": [q for _, q in quota]},
                schema=pa.schema([("qs", pa.string()), ("quota", pa.int64())]),
            ),
        )
        draw = sp.hash01(p.add(self.r.seed), "media_id")
        reason = p.add(f"not sampled (seed {self.r.seed})")
        sql = (
            f"SELECT {self.base}, CASE WHEN row_number() OVER (PARTITION BY strat ORDER BY {draw}, "
            f"media_id) > quota THEN {reason} END AS reason, CAST(NULL AS VARCHAR) AS dup, "
            f"0 AS step_no FROM {source} AS s JOIN _vla_quota AS q ON s.strat IS NOT DISTINCT "
            "FROM q.qs"
        )
        self._step(["sample"], sql, p)

    def split(self) -> None:
        """Plan each row's split from its group's draw (the final selection applies it,
        as ``f``: these rows, ``m``: their media row)."""
        p = self.split_params
        kind, level = parse_group(self.r.group) if self.r.group else ("duplicates", None)
        loosest = self.cat.levels[0] if self.cat.levels else None
        if kind == "duplicates" and level is None and loosest is None:
            kind = "none"  # no duplicates in this export: every row is its own group
        self.split_label = kind
        if kind == "duplicates":
            resolved = self.cat.level(level if level is not None else "min", "split level")
            self.split_label = f"duplicates@{resolved:g}"
            self.split_join = f"LEFT JOIN {self.groups(resolved)} AS d USING (media_id)"
        columns = {"media_id": "f.media_id", "gid": "d.gid"}
        columns |= {"cluster": "m.cluster_id", "video": "m.video_name"}
        draw = sp.hash01(p.add(self.r.seed), sp.group_key(kind, columns))
        self.split_case = sp.split_case(self.r.split, draw, p)
        self.funnel.append(
            {"step": "split", "rows_in": self.rows, "rows_out": self.rows, "removed": 0}
        )

    def report_leakage(self, table: str) -> None:
        """The leakage report over ``table`` (the selection: media_id, video_name, split)."""
        loosest = self.cat.levels[0] if self.cat.levels else None
        loose = None if loosest is None else self.groups(loosest)
        rows = f"(SELECT media_id, video_name AS video, split FROM {table})"
        self.leakage = sp.leakage(self.con, rows, loose, self.split_label, loosest)


def _columns(r: Recipe) -> list[str]:
    """The columns the steps of ``r`` need (fewer columns: faster steps)."""
    cols = ["media_id", "rv"]
    kind = parse_group(r.group)[0] if r.group else "duplicates"
    wanted = {
        "uniq": r.dedupe is not None and r.by != "uniqueness_score",
        "px": r.dedupe is not None and r.keep == "resolution",
        "fpath": r.dedupe is not None and r.keep == "first",
        "cluster": r.per_cluster is not None or (bool(r.split) and kind == "cluster"),
        "video": r.per_video is not None or (bool(r.split) and kind == "video"),
        "strat": r.sample is not None,
    }
    return cols + [c for c, on in wanted.items() if on]
