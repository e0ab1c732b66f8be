"""vlanalyze: fetch, query and materialize Visual Layer dataset exports.

Importing the package is cheap: the public names load their modules (and polars,
duckdb, requests) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vlanalyze._version import __version__
from vlanalyze.errors import (
    APIConnectionError,
    APIError,
    ArchiveError,
    AuthenticationError,
    CacheError,
    ConfigurationError,
    DownloadError,
    ExportFailedError,
    ExportFormatError,
    ExportTimeoutError,
    MaterializeError,
    QueryError,
    SelectionError,
    UnsafeArchiveError,
    VLAnalyzeError,
)

if TYPE_CHECKING:
    from vlanalyze.archive import extract_archive
    from vlanalyze.client import ExportTask, VisualLayerClient
    from vlanalyze.convert import convert
    from vlanalyze.export import Export, open_export
    from vlanalyze.pull import pull_export
    from vlanalyze.summary import summarize

_LAZY = {
    "open_export": "vlanalyze.export",
    "Export": "vlanalyze.export",
    "VisualLayerClient": "vlanalyze.client",
    "ExportTask": "vlanalyze.client",
    "pull_export": "vlanalyze.pull",
    "extract_archive": "vlanalyze.archive",
    "convert": "vlanalyze.convert",
    "summarize": "vlanalyze.summary",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "ArchiveError",
    "AuthenticationError",
    "CacheError",
    "ConfigurationError",
    "DownloadError",
    "Export",
    "ExportFailedError",
    "ExportFormatError",
    "ExportTask",
    "ExportTimeoutError",
    "MaterializeError",
    "QueryError",
    "SelectionError",
    "UnsafeArchiveError",
    "VLAnalyzeError",
    "VisualLayerClient",
    "__version__",
    "convert",
    "extract_archive",
    "open_export",
    "pull_export",
    "summarize",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vlanalyze' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
