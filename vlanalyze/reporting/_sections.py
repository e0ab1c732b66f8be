"""The report's sections as HTML: overview, duplicate groups, clusters, selection.

Each takes the numbers :mod:`._data` computed and the tiles made for the shown images,
and returns ``(id, nav name, HTML)``. Text from the data is escaped by :mod:`._html`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import polars as pl

from vlanalyze.reporting import _data as data
from vlanalyze.reporting._draw import histogram_plot, split_plot
from vlanalyze.reporting._html import Markup, Tile, esc, num, plot_img, table
from vlanalyze.reporting._plots import issues_plot, labels_plot
from vlanalyze.reporting._selection import SelectionData

if TYPE_CHECKING:
    from vlanalyze.query._export import Export
    from vlanalyze.reporting._report import ReportLimits

Section = tuple[str, str, str]


def _strip(ids: list[str], tiles: dict[str, Tile], keep: str | None, cls: str = "strip") -> str:
    shown = [dataclasses.replace(tiles[i], keep=i == keep).render() for i in ids if i in tiles]
    return f'<div class="{cls}">{"".join(shown)}</div>'


def overview(ov: data.Overview, ex: Export) -> Section:
    cards = "".join(
        f'<div class="card"><b>{num(n)}</b><span>{esc(name)}</span></div>'
        for name, n in ov.counts.items()
        if name != "info"
    )
    images = ex.images
    cards += (
        f'<div class="card"><b>{num(images.found)}</b><span>images found '
        f"({num(images.missing)} missing)</span></div>"
    )
    plots = [
        plot_img(histogram_plot(ov.histogram).svg(), "Histogram of uniqueness_score"),
        plot_img(issues_plot(ov).svg(), "Media per issue type"),
        plot_img(labels_plot(ov).svg(), "Media per label"),
    ]
    levels = ", ".join(f"{x:g}" for x in ov.levels) or "none"
    issues = table(
        ["issue type", "media", "issue rows"],
        ov.issues.select("issue_type", "media", "rows").rows(),
        {1, 2},
    )
    body = (
        "<h2>Overview</h2>"
        f'<p class="note">Rows per table; image-level issues; the top {ov.labels.height} of '
        f"{num(ov.label_kinds)} labels; duplicate levels: {esc(levels)}. "
        f"{num(ov.unscored)} media have no uniqueness_score.</p>"
        f'<div class="cards">{cards}</div><div class="plots">{"".join(plots)}</div>'
        f"<h3>Issues</h3>{issues}"
    )
    return "overview", "Overview", body


def duplicates(
    g: data.Groups, level: float, levels: list[float], tiles: dict[str, Tile], lim: ReportLimits
) -> Section:
    members = g.members.group_by("gid", maintain_order=True).agg("media_id")
    by_gid = dict(zip(members["gid"].to_list(), members["media_id"].to_list(), strict=True))
    blocks = []
    for gid, size in g.sizes.iter_rows():
        ids = by_gid.get(gid, [])
        more = f", {size - len(ids)} more not shown" if size > len(ids) else ""
        blocks.append(
            f'<div class="group"><h3>{num(size)} images <span>group {esc(gid)}{more}</span>'
            f"</h3>{_strip(ids, tiles, ids[0] if ids else None)}</div>"
        )
    others = ", ".join(f"{x:g}" for x in levels if x != level)
    body = (
        f"<h2>Duplicate groups at {level:g}</h2>"
        f'<p class="note">{num(g.total)} groups of 2+ images at threshold {level:g}'
        f"{' (other levels: ' + esc(others) + ')' if others else ''}. Showing the "
        f"{num(g.sizes.height)} biggest (at most {lim.groups}), up to {lim.members} images "
        "each. <b>KEEP</b> marks the one <code>select --dedupe</code> keeps by default: the "
        "highest uniqueness_score, ties by media_id.</p>" + "".join(blocks)
    )
    return "duplicates", "Duplicates", body


def clusters(g: data.Groups, tiles: dict[str, Tile], lim: ReportLimits) -> Section:
    members = g.members.group_by("gid", maintain_order=True).agg("media_id")
    by_gid = dict(zip(members["gid"].to_list(), members["media_id"].to_list(), strict=True))
    blocks = [
        f'<div class="group"><h3>{num(size)} images <span>cluster {esc(gid)}</span></h3>'
        f"{_strip(by_gid.get(gid, []), tiles, None)}</div>"
        for gid, size in g.sizes.iter_rows()
    ]
    body = (
        "<h2>Clusters</h2>"
        f'<p class="note">{num(g.total)} clusters. Showing the {num(g.sizes.height)} largest '
        f"(at most {lim.clusters}), each with its {lim.cluster_members} most unique images."
        "</p>" + "".join(blocks)
    )
    return "clusters", "Clusters", body


def selection(
    sel: SelectionData,
    st: data.SelectionStats,
    ex: Export,
    tiles: dict[str, Tile],
    lim: ReportLimits,
) -> Section:
    parts = [
        "<h2>Selection</h2>",
        f'<p class="note">{esc(sel.name)}: {num(st.rows)} rows.',
    ]
    if st.missing:
        parts.append(f' <span class="warn">{num(st.missing)} are not in this export.</span>')
    made_from = sel.export.get("fingerprint", {}).get("path") if sel.export else None
    if made_from and made_from != str(ex.source.metadata):
        parts.append(f' <span class="warn">Made from {esc(made_from)}.</span>')
    parts.append("</p>")
    parts.append(_funnel(sel.funnel))
    if sel.reasons is not None and not sel.reasons.is_empty():
        parts.append(
            "<h3>Why rows were removed</h3>"
            + table(["step", "reason", "rows"], sel.reasons.rows(), {2})
        )
    if not st.splits.is_empty():
        parts.append(_splits(st))
    if sel.recipe:
        parts.append(f"<h3>Recipe</h3><pre>{esc(sel.recipe)}</pre>")
    parts.append(
        f'<h3>Chosen images</h3><p class="note">The first {num(len(st.grid))} by rank, or in '
        f"the selection's order without one (at most {lim.grid}).</p>"
        + _strip(st.grid, tiles, None, "grid")
    )
    return "selection", "Selection", "".join(parts)


def _funnel(funnel: pl.DataFrame | None) -> str:
    if funnel is None or funnel.is_empty():
        return '<p class="note">No funnel: the selection file does not say how it was made.</p>'
    top = max(int(funnel["rows_in"].max() or 1), 1)  # type: ignore[arg-type]
    rows = [
        (
            step,
            rin,
            rout,
            removed,
            Markup(f'<span class="bar" style="width:{120 * rout // top}px"></span>'),
        )
        for step, rin, rout, removed in funnel.select(
            "step", "rows_in", "rows_out", "removed"
        ).rows()
    ]
    return "<h3>Funnel</h3>" + table(
        ["step", "rows in", "rows out", "removed", ""], rows, {1, 2, 3}
    )


def _splits(st: data.SelectionStats) -> str:
    sizes = table(["split", "media"], st.splits.rows(), {1})
    splits = st.splits["split"].to_list()
    by = {(sp, lab): n for sp, lab, n in st.per_split.rows()}
    names = st.per_split["label"].unique(maintain_order=True).to_list()
    names = [n for n in names if n is not None] + ([None] if None in names else [])
    labels = table(
        ["label", *splits],
        [("(other)" if n is None else n, *(by.get((sp, n), 0) for sp in splits)) for n in names],
        set(range(1, len(splits) + 1)),
    )
    leak = st.leakage or {}
    level = leak.get("loosest_level")
    dup = int(str(leak.get("duplicate_groups_across_splits") or 0))
    vids = int(str(leak.get("videos_across_splits") or 0))
    cls = "warn" if dup or vids else "note"
    where = f" at {level:g}" if isinstance(level, float) else ""
    return (
        '<h3>Splits</h3><div class="plots">'
        f"{plot_img(split_plot(st.per_split).svg(), 'Rows per split by label')}"
        f"<div>{sizes}</div></div>"
        f'<h3>Labels per split</h3><p class="note">Images per label: {esc(st.label_source)}; '
        f"the top labels, the rest as (other).</p>{labels}"
        f'<h3>Leakage</h3><p class="{cls}">{num(dup)} near-duplicate groups{where} '
        f"and {num(vids)} videos have images in more than one split.</p>"
    )


def footer(lim: ReportLimits, version: str) -> str:
    return (
        f"Made by vlanalyze {esc(version)}. Bounded by design: at most {lim.groups} duplicate "
        f"groups of {lim.members}, {lim.clusters} clusters of {lim.cluster_members}, "
        f"{lim.grid} chosen images and {lim.labels} labels are shown; the counts are of all "
        "rows. Thumbnails link to the image in Visual Layer; hover for its path, score and "
        "labels. Offline: this page loads nothing from the network."
    )
