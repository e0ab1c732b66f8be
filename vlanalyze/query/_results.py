"""The typed results of :attr:`Export.info <vlanalyze.Export.info>` and
:func:`~vlanalyze.summarize`: frozen dataclasses, each with ``to_dict()`` for JSON.

Plain values only (no frames, no connections), so a result outlives its export and
prints, compares and serialises as data. This module computes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "DuplicateLevel",
    "ExportInfo",
    "ImageCounts",
    "IssueType",
    "LabelCount",
    "Summary",
]


@dataclass(frozen=True)
class ImageCounts:
    """How the export's image files matched its media items."""

    files: int  # image files in the export
    found: int  # media items with exactly one image file
    missing: int  # media items with none
    ambiguous: int  # media items whose file name several image files share


def _text(block: Mapping[str, Any], key: str) -> str | None:
    value = block.get(key)
    return None if value is None else str(value)


@dataclass(frozen=True)
class ExportInfo:
    """The export's ``info`` block, with what vlanalyze learnt opening it.

    The documented keys of the block are attributes (None where the export lacks
    them); ``block`` is the block as written, unknown keys included.
    """

    format: str  # "json" or "parquet"
    source: str  # what was opened
    counts: dict[str, int]  # rows per table
    images: ImageCounts
    block: dict[str, Any] = field(default_factory=dict)
    # The metadata file read (a ZIP's as "archive.zip:member"), and, for a folder that
    # holds both, that the other is not read.
    metadata: str = ""

    @property
    def dataset(self) -> str | None:
        """The dataset's display name."""
        return _text(self.block, "dataset")

    @property
    def schema_version(self) -> str | None:
        """The export format's version."""
        return _text(self.block, "schema_version")

    @property
    def export_time(self) -> str | None:
        """When Visual Layer wrote the export (ISO, no time zone)."""
        return _text(self.block, "export_time")

    @property
    def exported_by(self) -> str | None:
        """Who exported it."""
        return _text(self.block, "exported_by")

    @property
    def total_media_items(self) -> int | None:
        """The number of media items the export says it holds."""
        value = self.block.get("total_media_items")
        return value if isinstance(value, int) else None

    def to_dict(self) -> dict[str, Any]:
        """The block's keys, then ``format``, ``source``, ``metadata``, ``counts``, ``images``."""
        return {
            **self.block,
            "format": self.format,
            "source": self.source,
            "metadata": self.metadata,
            "counts": dict(self.counts),
            "images": asdict(self.images),
        }


@dataclass(frozen=True)
class IssueType:
    """One issue type: its image- and object-level rows, and the distinct media."""

    issue_type: str
    image_rows: int
    object_rows: int
    media: int


@dataclass(frozen=True)
class DuplicateLevel:
    """One duplicate threshold level: its groups and the distinct media in them."""

    threshold: float | None
    groups: int
    media: int


@dataclass(frozen=True)
class LabelCount:
    """One image-level label: distinct media carrying it, and its rows."""

    category_name: str | None
    media: int
    labels: int


@dataclass(frozen=True)
class Summary:
    """What ``vlanalyze info`` shows: the export's info and its headline numbers."""

    export: ExportInfo
    issue_types: list[IssueType]
    duplicate_levels: list[DuplicateLevel]
    top_labels: list[LabelCount]
    uniqueness_quantiles: dict[str, float | None]  # "p0", "p10", ..., "p100"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``export`` (the info block), ``counts``, ``images``, then the rest."""
        info = self.export.to_dict()
        return {
            "export": {k: v for k, v in info.items() if k not in ("counts", "images")},
            "counts": info["counts"],
            "images": info["images"],
            "issue_types": [asdict(row) for row in self.issue_types],
            "duplicate_levels": [asdict(row) for row in self.duplicate_levels],
            "top_labels": [asdict(row) for row in self.top_labels],
            "uniqueness_quantiles": dict(self.uniqueness_quantiles),
        }
