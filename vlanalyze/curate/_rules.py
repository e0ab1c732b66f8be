"""The rules of a selection as SQL fragments over an export's DuckDB views, and the checks
that every name a rule uses exists in the export.

Names (columns) reach SQL only through :func:`~vlanalyze.query._sql.quote_ident`;
values (labels, tags, issue types, thresholds, ...) only as bound parameters collected
in a :class:`Params`. The one exception is ``where``: the user's own predicate, which is
SQL by design; :func:`check_where` makes sure it is one expression, not statements.
Nothing here runs a selection (that is :mod:`vlanalyze.curate._select`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import duckdb
from duckdb import DuckDBPyConnection

from vlanalyze.curate._recipe import IssueGate, Recipe
from vlanalyze.errors import SelectionError
from vlanalyze.query._schema import LABEL_SOURCE_PRIORITY
from vlanalyze.query._sql import quote_ident, quote_literal

SHOW_NAMES = 20  # an error lists at most this many valid names
# Which label is an image's primary label: the most authoritative source first.
SOURCE_PRIORITY = (
    "CASE source "
    + " ".join(f"WHEN {quote_literal(s)} THEN {i}" for i, s in enumerate(LABEL_SOURCE_PRIORITY))
    + f" ELSE {len(LABEL_SOURCE_PRIORITY)} END"
)


class Params:
    """Bound parameters of one statement: :meth:`add` returns the ``$name`` to write."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"

    def used_by(self, sql: str) -> dict[str, Any]:
        """The parameters ``sql`` refers to (DuckDB refuses unused ones)."""
        return {k: v for k, v in self.values.items() if re.search(rf"\${k}\b", sql)}


class Catalog:
    """What an export holds, asked of its views only when a rule needs it."""

    def __init__(
        self, con: DuckDBPyConnection, stored: Callable[[str, Callable[[], Any]], Any] | None = None
    ) -> None:
        self.con = con
        # Export.stored: keeps a computed value with the cache build (one scan per build)
        self.stored = stored or (lambda _name, compute: compute())

    @cached_property
    def columns(self) -> list[str]:
        return [str(row[0]) for row in self.con.execute("DESCRIBE media").fetchall()]

    @cached_property
    def _issue_kinds(self) -> list[tuple[str, bool, float | None]]:
        """(issue_type, image-level?, duplicate threshold) present: one scan of issues,
        once per cache build."""

        def scan() -> list[list[Any]]:
            rows = self.con.execute(
                "SELECT DISTINCT issue_type, object_id IS NULL, CASE WHEN issue_type = "
                "'duplicates' THEN duplicate_threshold END FROM issues "
                "WHERE issue_type IS NOT NULL ORDER BY ALL"
            ).fetchall()
            return [list(r) for r in rows]

        rows = self.stored("curate-issue-kinds", scan)
        return [(str(t), bool(img), None if th is None else float(th)) for t, img, th in rows]

    def issue_types(self, *, image: bool) -> list[str]:
        """The image-level (or object-level) issue types present, sorted."""
        return sorted({t for t, img, _ in self._issue_kinds if img == image})

    @cached_property
    def levels(self) -> list[float]:
        """The image-level duplicate thresholds present, loosest (lowest) first."""
        return sorted({th for t, img, th in self._issue_kinds if img and th is not None})

    def distinct(self, table: str, column: str, where: str = "TRUE") -> list[str]:
        """Sorted distinct non-null values of ``table.column`` (our own names only)."""
        rows = self.con.execute(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL AND {where} "
            "ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def require(self, what: str, table: str, column: str, names: Sequence[str]) -> None:
        """Raise naming the first of ``names`` absent from ``table.column``, listing valid ones."""
        if not names:
            return
        found = {
            str(r[0])
            for r in self.con.execute(
                f"SELECT DISTINCT {column} FROM {table} WHERE list_contains($n, {column})",
                {"n": list(names)},
            ).fetchall()
        }
        missing = [n for n in names if n not in found]
        if missing:
            raise unknown(what, missing[0], self.distinct(table, column))

    def column(self, name: str, what: str = "column") -> str:
        """``name`` quoted, after checking ``media`` has it."""
        if name not in self.columns:
            raise unknown(what, name, self.columns, table="media")
        return quote_ident(name)

    def level(self, value: float | str, what: str = "duplicate threshold") -> float:
        """The export's own duplicate level for ``value`` (a number, ``min`` or ``max``)."""
        levels = self.levels
        if not levels:
            raise SelectionError(
                "this export has no image-level duplicates issues",
                hint="drop the dedupe rule, or group the split by cluster|video|none",
            )
        if value == "min":
            return levels[0]
        if value == "max":
            return levels[-1]
        for level in levels:
            if abs(level - float(value)) < 1e-9:
                return level
        shown = ", ".join(f"{x:g}" for x in levels)
        raise SelectionError(
            f"no {what} {value:g} in this export" if isinstance(value, float) else str(value),
            hint=f"levels: {shown} (min = {levels[0]:g}, max = {levels[-1]:g})",
        )


def unknown(
    what: str, value: str, valid: Sequence[str], table: str | None = None
) -> SelectionError:
    """The one shape of an "unknown name" error: the value, then valid ones."""
    shown = ", ".join(valid[:SHOW_NAMES])
    if len(valid) > SHOW_NAMES:
        shown += f", ... ({len(valid)} in all)"
    where = f" in {table}" if table else " in this export"
    return SelectionError(
        f"unknown {what} {value!r}{where}",
        hint=f"valid: {shown}" if valid else f"this export has no {what}s",
    )


def check_where(con: DuckDBPyConnection, expr: str) -> str:
    """``expr`` wrapped for embedding if it is one SQL expression over ``media``, else a
    SelectionError. It is run once over no rows, with no parameters, so that a statement
    separator, a syntax error, an unknown column or a stray ``$param`` is caught here."""
    if ";" in expr or not expr.strip():
        raise SelectionError(f"--where {expr!r} is not one SQL expression (no ';' allowed)")
    wrapped = f"((\n{expr}\n))"  # newlines: a trailing -- comment cannot eat our ')'
    try:
        con.execute(
            "SELECT count(*) FROM (SELECT * FROM media LIMIT 0) AS m "
            f"WHERE NOT COALESCE({wrapped}, FALSE)"  # exactly as the filter step embeds it
        )
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SelectionError(
            f"--where {expr!r} is not a valid predicate over media: {message}",
            hint="columns: " + ", ".join(Catalog(con).columns),
        ) from None
    return wrapped


def _in_labels(p: Params, recipe: Recipe, names: Sequence[str], *, all_of: bool) -> str:
    cond = "TRUE"
    if names:
        cond = f"list_contains({p.add(list(names))}, category_name)"
    if recipe.label_source is not None:
        cond += f" AND source = {p.add(recipe.label_source)}"
    having = ""
    if all_of:
        having = f" GROUP BY media_id HAVING count(DISTINCT category_name) = {p.add(len(names))}"
    return f"SELECT media_id FROM labels WHERE {cond}{having}"


def filters(con: DuckDBPyConnection, cat: Catalog, r: Recipe, p: Params) -> list[tuple[str, str]]:
    """The filter rules as (reason, condition over ``media AS m``) pairs, checked."""
    out: list[tuple[str, str]] = [(f"where {w}", check_where(con, w)) for w in r.where]
    cat.require("label", "labels", "category_name", [*r.labels, *r.no_labels])
    if r.label_source is not None:
        sources = cat.distinct("labels", "source")
        if r.label_source not in sources:
            raise unknown("label source", r.label_source, sources)
    if r.labels or r.label_source is not None:
        sub = _in_labels(p, r, r.labels, all_of=r.all_labels and bool(r.labels))
        kind = "all of labels" if r.all_labels else "label"
        out.append((f"{kind} {', '.join(r.labels) or r.label_source}", f"m.media_id IN ({sub})"))
    if r.no_labels:
        sub = _in_labels(p, r, r.no_labels, all_of=False)
        out.append((f"no-label {', '.join(r.no_labels)}", f"m.media_id NOT IN ({sub})"))
    cat.require("tag", "tags", "tag_name", [*r.tags, *r.no_tags])
    for names, neg in ((r.tags, ""), (r.no_tags, "NOT ")):
        if names:
            sub = f"SELECT media_id FROM tags WHERE list_contains({p.add(list(names))}, tag_name)"
            out.append(
                (f"{'no-' if neg else ''}tag {', '.join(names)}", f"m.media_id {neg}IN ({sub})")
            )
    if r.media_type is not None:
        out.append((f"media type {r.media_type}", f"m.media_type = {p.add(r.media_type)}"))
    if r.clusters:
        cat.require("cluster", "media", "cluster_id", r.clusters)
        out.append(("cluster", f"list_contains({p.add(list(r.clusters))}, m.cluster_id)"))
    return out


def gates(cat: Catalog, r: Recipe, p: Params) -> list[tuple[str, str]]:
    """The issue gates as (reason, condition over ``media AS m``) pairs, checked."""
    out: list[tuple[str, str]] = []
    for gates_, level, label in (
        (r.exclude_issues, "object_id IS NULL", "issue"),
        (r.exclude_object_issues, "object_id IS NOT NULL", "object issue"),
    ):
        if not gates_:
            continue
        types = cat.issue_types(image=level == "object_id IS NULL")
        for gate in gates_:
            if gate.issue_type not in types:
                raise unknown(f"{label} type", gate.issue_type, types)
            out.append((f"{label} {gate}", f"m.media_id NOT IN ({_gate_sql(gate, level, p)})"))
    return out


def _gate_sql(gate: IssueGate, level: str, p: Params) -> str:
    cond = f"issue_type = {p.add(gate.issue_type)} AND {level}"
    if gate.min_confidence is not None:
        cond += f" AND confidence >= {p.add(gate.min_confidence)}"
    return f"SELECT media_id FROM issues WHERE {cond}"


def duplicate_groups(level: float, p: Params, ids: str) -> str:
    """``media_id, gid``: the duplicate group at ``level`` (image-level) of each image
    of the query ``ids`` (one per image, should an export ever give two)."""
    return (
        "SELECT media_id, min(duplicate_group_id) AS gid FROM issues "
        "WHERE issue_type = 'duplicates' AND object_id IS NULL "
        f"AND duplicate_threshold = {p.add(level)} AND media_id IN ({ids}) GROUP BY media_id"
    )


def duplicate_members(level: float, p: Params) -> str:
    """``media_id, gid``: every image-level membership of a duplicate group at ``level``."""
    return (
        "SELECT media_id, duplicate_group_id AS gid FROM issues "
        "WHERE issue_type = 'duplicates' AND object_id IS NULL "
        f"AND duplicate_threshold = {p.add(level)}"
    )


def rank_order(ascending: bool, prefix: str = "") -> str:
    """ORDER BY text of the ranking: ``rv`` (the --by value), ties by media_id."""
    direction = "ASC" if ascending else "DESC"
    return f"{prefix}rv {direction} NULLS LAST, {prefix}media_id"


# The key whose smallest value names a duplicate group's survivor, for each keep policy
# (arg_min over a struct: fields compared in order; {u}: the uniqueness column). NULL
# scores and sizes rank last; media_id last of all, so there are no ties.
_LAST = "CAST('inf' AS DOUBLE)"
KEEP_KEY = {
    "uniqueness": f"struct_pack(a := COALESCE(-{{u}}, {_LAST}), z := media_id)",
    "resolution": (
        f"struct_pack(a := COALESCE(-CAST(px AS DOUBLE), {_LAST}), "
        f"b := COALESCE(-{{u}}, {_LAST}), z := media_id)"
    ),
    "labelled": f"struct_pack(a := NOT labelled, b := COALESCE(-{{u}}, {_LAST}), z := media_id)",
    "first": "struct_pack(a := fpath IS NULL, b := COALESCE(fpath, ''), z := media_id)",
}


def primary_labels(r: Recipe, p: Params, ids: str) -> str:
    """``media_id, label``: each image's primary label, for the media ids of query ``ids``.

    Policy: among the image's labels (only those of ``label_source`` and, if labels
    were asked for, only those), the one from the most authoritative source (User, then
    Model, then Visual Layer, then any other), ties by name.
    """
    cond = f"media_id IN ({ids})"
    if r.label_source is not None:
        cond += f" AND source = {p.add(r.label_source)}"
    if r.labels:
        cond += f" AND list_contains({p.add(list(r.labels))}, category_name)"
    return (
        f"SELECT media_id, first(category_name ORDER BY {SOURCE_PRIORITY}, category_name) "
        f"AS label FROM labels WHERE {cond} GROUP BY media_id"
    )
