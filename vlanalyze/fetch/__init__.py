"""The fetch layer: get an export from the Visual Layer API onto disk.

Start a full or selective export, poll it, download the ZIP (resumable), extract it
safely, and record where it came from. Knows the API and archives; knows nothing of
the metadata's tables (that is :mod:`vlanalyze.query`). Public names are re-exported
by :mod:`vlanalyze`; the modules here are private.
"""
