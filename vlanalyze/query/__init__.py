"""The query layer: open an export and answer questions about it.

Finds the metadata in a folder, ZIP or file, normalizes it into tidy tables in a
Parquet cache, and serves them as polars frames and DuckDB views. Never talks to the
API (that is :mod:`vlanalyze.fetch`) and never writes outside its cache. Public names
are re-exported by :mod:`vlanalyze`; the modules here are private.
"""
