"""The whole loop, offline, in one call (``vla.run_demo``, ``vlanalyze demo``): a stand-in
of the export API serving the bundled sample -> fetch -> select -> materialize -> report.

The one module allowed to use every layer (and the stand-in of :mod:`vlanalyze.testing`):
it exists to show them working together. Never prints; each step is reported through
``on_step``.
"""
