"""The report's charts as public calls, for notebooks: each aggregates in DuckDB over an
export's views (or a selection) and returns a :class:`~vlanalyze.reporting._draw.Plot`,
which Jupyter shows inline. The HTML report embeds the same charts.
"""

from __future__ import annotations

from contextlib import closing

from vlanalyze.query._export import Export
from vlanalyze.reporting import _data as data
from vlanalyze.reporting._draw import Plot, bar_plot, histogram_plot, split_plot
from vlanalyze.reporting._selection import load_selection


def plot_uniqueness(ex: Export) -> Plot:
    """A histogram of ``uniqueness_score`` over every media item (20 bins over [0, 1])."""
    with closing(ex.duckdb()) as con:
        return histogram_plot(data.histogram(con, "media"))


def plot_issues(ex: Export) -> Plot:
    """Media items per image-level issue type, most frequent first."""
    with closing(ex.duckdb()) as con:
        ov = data.overview(con, ex.counts, top_labels=0)
    return issues_plot(ov)


def plot_labels(ex: Export, *, top: int = 20) -> Plot:
    """Media items per image-level label, the ``top`` most frequent."""
    with closing(ex.duckdb()) as con:
        ov = data.overview(con, ex.counts, top_labels=top)
    return labels_plot(ov)


def plot_splits(ex: Export, selection: object, *, top: int = 8) -> Plot:
    """Rows per split of ``selection`` (a Selection, a DataFrame or a selection file),
    stacked by its ``top`` labels (its ``label`` column, else the export's labels).

    Raises:
        SelectionError: the selection has no ``split`` column or cannot be read.
    """
    sel = load_selection(selection)
    with closing(ex.duckdb()) as con:
        stats = data.selection_stats(con, sel.rows, grid=0, top_labels=top)
    return split_plot(stats.per_split if "split" in sel.rows.columns else sel.rows)


def issues_plot(ov: data.Overview) -> Plot:
    return bar_plot(
        ov.issues["issue_type"].to_list(),
        ov.issues["media"].to_list(),
        title="Image-level issues",
        xlabel="media with the issue",
    )


def labels_plot(ov: data.Overview) -> Plot:
    return bar_plot(
        ov.labels["label"].to_list(),
        ov.labels["media"].to_list(),
        title=f"Top {ov.labels.height} labels",
        xlabel="media with the label",
    )
