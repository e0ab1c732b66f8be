"""Draw the report's charts with matplotlib, as SVG: no pyplot, no global state, no
window; the Agg-free SVG backend renders text as text (small files, the browser's font).

Every function takes a small, already aggregated table and returns a :class:`Plot`,
which a notebook shows inline (``_repr_svg_``) and the report embeds as an image. Names
from the data are drawn as plain text: ``$`` would start matplotlib's math mode, so it
is escaped. Never prints, never writes a file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vlanalyze.errors import SelectionError

ACCENT = "#2563eb"
MUTED = "#94a3b8"
# matplotlib's tab10, distinct for the 8 labels a split chart shows
SPLIT_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
)
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays text
    "svg.hashsalt": "vlanalyze",  # the same plot gives the same bytes
    "font.family": "sans-serif",
    "font.size": 9.0,
}


class Plot:
    """A chart: ``.figure`` (a matplotlib Figure), ``.svg()``; shown inline by Jupyter."""

    def __init__(self, figure: Figure, title: str) -> None:
        self.figure = figure
        self.title = title

    def __repr__(self) -> str:
        return f"<Plot {self.title!r}>"

    def svg(self) -> str:
        """The chart as an SVG document (deterministic: no date, fixed ids)."""
        import matplotlib

        out = io.StringIO()
        with matplotlib.rc_context(_RC):
            self.figure.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
        return out.getvalue()

    def _repr_svg_(self) -> str:
        return self.svg()


def _text(name: object) -> str:
    """A name from the data as plain matplotlib text (no math mode)."""
    return str(name).replace("\\", "\\\\").replace("$", r"\$")


def _short(name: object, width: int = 28) -> str:
    text = str(name)
    return text if len(text) <= width else text[: width - 1] + "…"


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def histogram_plot(hist: pl.DataFrame, *, title: str = "Uniqueness score") -> Plot:
    """Bars of ``hist`` (``lo, hi, media``)."""
    fig, ax = _figure(6.0, 2.6)
    lo = hist["lo"].to_list()
    width = [h - lo_ for lo_, h in zip(lo, hist["hi"].to_list(), strict=True)]
    ax.bar(
        lo,
        hist["media"].to_list(),
        width=width,
        align="edge",
        color=ACCENT,
        edgecolor="white",
        linewidth=0.6,
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel("uniqueness_score")
    ax.set_ylabel("media")
    ax.set_title(title, loc="left", fontweight="bold")
    return Plot(fig, title)


def bar_plot(names: Sequence[object], values: Sequence[int], *, title: str, xlabel: str) -> Plot:
    """Horizontal bars, the first name on top."""
    rows = max(len(names), 1)
    fig, ax = _figure(6.0, 0.6 + 0.24 * rows)
    ys = list(range(len(names)))
    ax.barh(ys, list(values), color=ACCENT, height=0.7)
    ax.set_yticks(ys, [_text(_short(n)) for n in names])
    ax.invert_yaxis()
    for y, v in zip(ys, values, strict=True):
        ax.annotate(f" {v:,}", (v, y), va="center", fontsize=8, color="#334155")
    if not names:
        ax.text(0.5, 0.5, "none", ha="center", va="center", color=MUTED, transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontweight="bold")
    ax.margins(x=0.12)
    return Plot(fig, title)


def split_plot(per_split: pl.DataFrame, *, title: str = "Split balance") -> Plot:
    """Stacked bars: for each split (``split, label, media``), its rows by label."""
    if "split" not in per_split.columns:
        raise SelectionError("this selection has no split column", hint="select with split=...")
    splits = per_split["split"].unique(maintain_order=True).to_list()
    totals = per_split.group_by("label").agg(pl.col("media").sum())
    named = totals.drop_nulls("label").sort(["media", "label"], descending=[True, False])
    labels: list[str | None] = named["label"].to_list()
    if totals["label"].null_count():
        labels.append(None)  # "(other)" last
    fig, ax = _figure(6.0, 0.9 + 0.35 * max(len(splits), 1))
    left = [0] * len(splits)
    for i, label in enumerate(labels):
        part = per_split.filter(pl.col("label").eq_missing(label))
        got = dict(zip(part["split"].to_list(), part["media"].to_list(), strict=True))
        vals = [int(got.get(s, 0)) for s in splits]
        color = SPLIT_COLORS[i % len(SPLIT_COLORS)] if label is not None else MUTED
        ax.barh(
            [_text(s) for s in splits],
            vals,
            left=left,
            color=color,
            label=_text(_short(label if label is not None else "(other)", 20)),
            height=0.6,
        )
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("media")
    ax.set_title(title, loc="left", fontweight="bold")
    if labels:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return Plot(fig, title)
