"""vlanalyze: fetch, query and materialize Visual Layer dataset exports."""
from vlanalyze._version import __version__

__all__ = ["__version__"]
