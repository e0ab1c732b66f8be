"""The materialize step: turn a selection into files.

Reads selections (files with a ``media_id`` column), writes query results and whole
exports as CSV/Parquet/JSON, and (plan, then apply) image folders and training
layouts. Every write is atomic and never replaces a user's file unasked.
"""
