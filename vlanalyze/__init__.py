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
    from vlanalyze.curate._recipe import Recipe
    from vlanalyze.curate._select import Selection, select, top
    from vlanalyze.demo._demo import DemoResult, DemoStep, run_demo
    from vlanalyze.fetch._archive import extract_archive
    from vlanalyze.fetch._client import ExportTask, VisualLayerClient
    from vlanalyze.fetch._pull import PulledExport, pull_export
    from vlanalyze.materialize._apply import MaterializeResult, materialize
    from vlanalyze.materialize._convert import convert
    from vlanalyze.materialize._plan import Plan, plan_materialize
    from vlanalyze.materialize._selection import SelectionTable, read_selection
    from vlanalyze.query._export import Export
    from vlanalyze.query._open import open_export
    from vlanalyze.query._results import ExportInfo, Summary
    from vlanalyze.query._summary import summarize
    from vlanalyze.reporting._draw import Plot
    from vlanalyze.reporting._plots import plot_issues, plot_labels, plot_splits, plot_uniqueness
    from vlanalyze.reporting._report import Report, ReportLimits, report

_LAZY = {
    "open_export": "vlanalyze.query._open",
    "Export": "vlanalyze.query._export",
    "VisualLayerClient": "vlanalyze.fetch._client",
    "ExportTask": "vlanalyze.fetch._client",
    "pull_export": "vlanalyze.fetch._pull",
    "PulledExport": "vlanalyze.fetch._pull",
    "extract_archive": "vlanalyze.fetch._archive",
    "convert": "vlanalyze.materialize._convert",
    "materialize": "vlanalyze.materialize._apply",
    "MaterializeResult": "vlanalyze.materialize._apply",
    "plan_materialize": "vlanalyze.materialize._plan",
    "Plan": "vlanalyze.materialize._plan",
    "read_selection": "vlanalyze.materialize._selection",
    "SelectionTable": "vlanalyze.materialize._selection",
    "summarize": "vlanalyze.query._summary",
    "ExportInfo": "vlanalyze.query._results",
    "Summary": "vlanalyze.query._results",
    "select": "vlanalyze.curate._select",
    "top": "vlanalyze.curate._select",
    "Selection": "vlanalyze.curate._select",
    "Recipe": "vlanalyze.curate._recipe",
    "run_demo": "vlanalyze.demo._demo",
    "DemoResult": "vlanalyze.demo._demo",
    "DemoStep": "vlanalyze.demo._demo",
    "report": "vlanalyze.reporting._report",
    "Report": "vlanalyze.reporting._report",
    "ReportLimits": "vlanalyze.reporting._report",
    "Plot": "vlanalyze.reporting._draw",
    "plot_issues": "vlanalyze.reporting._plots",
    "plot_labels": "vlanalyze.reporting._plots",
    "plot_splits": "vlanalyze.reporting._plots",
    "plot_uniqueness": "vlanalyze.reporting._plots",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "ArchiveError",
    "AuthenticationError",
    "CacheError",
    "ConfigurationError",
    "DemoResult",
    "DemoStep",
    "DownloadError",
    "Export",
    "ExportFailedError",
    "ExportFormatError",
    "ExportInfo",
    "ExportTask",
    "ExportTimeoutError",
    "MaterializeError",
    "MaterializeResult",
    "Plan",
    "Plot",
    "PulledExport",
    "QueryError",
    "Recipe",
    "Report",
    "ReportLimits",
    "Selection",
    "SelectionError",
    "SelectionTable",
    "Summary",
    "UnsafeArchiveError",
    "VLAnalyzeError",
    "VisualLayerClient",
    "__version__",
    "convert",
    "extract_archive",
    "materialize",
    "open_export",
    "plan_materialize",
    "plot_issues",
    "plot_labels",
    "plot_splits",
    "plot_uniqueness",
    "pull_export",
    "read_selection",
    "report",
    "run_demo",
    "select",
    "summarize",
    "top",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vlanalyze' has no attribute {name!r}")
    if name == "materialize":
        # The subpackage of that name is callable: it stays what vla.materialize is.
        return importlib.import_module("vlanalyze.materialize")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
