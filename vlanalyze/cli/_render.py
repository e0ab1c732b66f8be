"""Plain-text rendering of the ``info`` summary for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlanalyze.query._results import Summary


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells
    ]
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_summary(summary: Summary) -> str:
    """The summary from :func:`vlanalyze.query._summary.summarize` as aligned text."""
    data = summary.to_dict()
    ex = data["export"]
    images = data["images"]
    lines = [
        f"Dataset      {ex.get('dataset', '-')}  (schema {ex.get('schema_version', '-')}, "
        f"{ex.get('format')})",
        f"Exported     {ex.get('export_time', '-')} by {ex.get('exported_by', '-')}",
        f"Source       {ex.get('source')}",
        f"Metadata     {ex.get('metadata')}",
        "",
        "Tables",
        *_table([{"table": k, "rows": v} for k, v in data["counts"].items()], ["table", "rows"]),
        "",
        f"Images       {images['found']} found, {images['missing']} missing, "
        f"{images['ambiguous']} ambiguous ({images['files']} files in images/)",
        "",
        "Issue types  (a duplicates row per threshold level: 'media' counts images)",
        *_table(data["issue_types"], ["issue_type", "image_rows", "object_rows", "media"]),
        "",
        "Duplicate levels",
        *_table(data["duplicate_levels"], ["threshold", "groups", "media"]),
        "",
        "Top labels",
        *_table(data["top_labels"], ["category_name", "media", "labels"]),
        "",
        "Uniqueness score quantiles",
        *_table([data["uniqueness_quantiles"]], list(data["uniqueness_quantiles"])),
    ]
    return "\n".join(lines)
