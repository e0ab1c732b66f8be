"""The curate layer: pick a training subset from an export's tables.

Filters, issue gates, dedupe by duplicate group, per-cluster caps, top-N, seeded
samples and group-aware splits, as pure functions over :mod:`vlanalyze.query` tables.
Writes no image files (that is :mod:`vlanalyze.materialize`).
"""
