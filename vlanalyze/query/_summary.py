"""A summary of an export, as a typed :class:`~vlanalyze.query._results.Summary`: what
``vlanalyze info`` shows.

Counts per table, issue types (image- and object-level, with distinct media, since a
``duplicates`` row per threshold level counts levels, not images), duplicate levels,
top labels, uniqueness quantiles and how many images were found. Pure queries over an
:class:`~vlanalyze.query._export.Export`; it prints nothing.
"""

from __future__ import annotations

from typing import Any

from vlanalyze.query._export import Export
from vlanalyze.query._results import DuplicateLevel, IssueType, LabelCount, Summary

_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)

# Distinct images are counted by ``{media}``: see _media_key.
_ISSUE_TYPES = """
    SELECT issue_type,
           count(*) FILTER (WHERE object_id IS NULL) AS image_rows,
           count(*) FILTER (WHERE object_id IS NOT NULL) AS object_rows,
           count(DISTINCT {media}) AS media
    FROM issues GROUP BY issue_type ORDER BY media DESC, issue_type
"""
_DUPLICATE_LEVELS = """
    SELECT duplicate_threshold AS threshold,
           count(DISTINCT duplicate_group_id) AS groups,
           count(DISTINCT {media}) AS media
    FROM issues WHERE issue_type = 'duplicates' AND object_id IS NULL
    GROUP BY duplicate_threshold ORDER BY duplicate_threshold
"""
_TOP_LABELS = """
    SELECT category_name, count(DISTINCT {media}) AS media, count(*) AS labels
    FROM labels GROUP BY category_name
    ORDER BY media DESC, category_name LIMIT $top
"""
_HASH = "CASE WHEN media_id IS NOT NULL THEN hash(media_id) END"


def summarize(export: Export, *, top: int = 10) -> Summary:
    """Summarize ``export``: counts, issue types, duplicate levels, top labels, quantiles.

    Args:
        export: The opened export.
        top: How many labels ``top_labels`` lists.

    Returns:
        The :class:`Summary` (``to_dict()`` gives its JSON form).
    """
    # The queries read every row: their answers are kept with the cache build, so
    # only the first summary of a build pays for them (#11).
    stored = export.stored(f"summary-top{top}", lambda: _queries(export, top))
    return Summary(
        export=export.info,
        issue_types=[IssueType(**r) for r in stored["issue_types"]],
        duplicate_levels=[DuplicateLevel(**r) for r in stored["duplicate_levels"]],
        top_labels=[LabelCount(**r) for r in stored["top_labels"]],
        uniqueness_quantiles=stored["uniqueness_quantiles"],
    )


def _queries(export: Export, top: int) -> dict[str, Any]:
    """The summary's parts that need a pass over the tables, as JSON values."""
    media = _media_key(export)
    return {
        "issue_types": export.sql_rows(_ISSUE_TYPES.format(media=media)),
        "duplicate_levels": export.sql_rows(_DUPLICATE_LEVELS.format(media=media)),
        "top_labels": export.sql_rows(_TOP_LABELS.format(media=media), {"top": top}),
        "uniqueness_quantiles": _quantiles(export),
    }


def _media_key(export: Export) -> str:
    """What ``count(DISTINCT ...)`` counts images by: a 64-bit hash of ``media_id`` where
    each row of media has a hash of its own (checked here, once: then the ids are unique
    and the hash tells them apart, so counting hashes is exactly counting ids, and twice
    as fast), else ``media_id`` itself (repeated or missing ids, or a collision).

    Every row of labels and issues carries the media_id of a row of media, so a hash
    without collisions on media's ids has none on theirs.
    """
    row = export.sql_rows(f"SELECT count(DISTINCT {_HASH}) = count(*) AS ok FROM media")[0]
    return _HASH if row["ok"] else "media_id"


def _quantiles(export: Export) -> dict[str, float | None]:
    # One aggregate for every quantile: each holds all the scores (80 MB at 10M items).
    row = export.sql_rows(
        "SELECT quantile_cont(uniqueness_score, $q) AS q FROM media", {"q": list(_QUANTILES)}
    )[0]
    values = row["q"] or [None] * len(_QUANTILES)
    return {
        f"p{int(q * 100)}": (None if v is None else float(v))
        for q, v in zip(_QUANTILES, values, strict=True)
    }
