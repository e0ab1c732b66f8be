"""See an export: plots, thumbnails and a self-contained HTML report (``vla.report``).

Named ``reporting``, not ``report``: Python puts a subpackage on its parent under its
own name, which would shadow the public function ``vlanalyze.report``.

Reads an export through the query layer (and a selection made by the curate layer, or
the file it wrote); writes one HTML file and a thumbnail cache beside the export's
table cache. Never fetches, never prints.
"""
