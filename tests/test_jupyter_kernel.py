"""Every DuckDB connection vlanalyze opens works inside a real Jupyter kernel that has no
``ipywidgets`` (issue #11): there DuckDB refuses even to switch its progress bar off."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CELL = """
import vlanalyze as vla
with vla.open_export({path!r}, cache_dir={cache!r}) as ex:
    n = ex.sql("SELECT count(*) AS n FROM media")["n"].item()
    con = ex.duckdb()
    m = con.sql("SELECT count(*) FROM labels").fetchall()[0][0]
    con.close()
print("counts", n, m, ex.counts["labels"])
"""


@pytest.mark.slow
def test_queries_run_in_a_kernel_without_ipywidgets(sample_json_copy: Path, tmp_path: Path) -> None:
    if not all(importlib.util.find_spec(m) for m in ("nbclient", "ipykernel")):
        pytest.skip("nbclient and ipykernel (the dev extra) are needed to start a kernel")
    if importlib.util.find_spec("ipywidgets") is not None:
        pytest.skip("ipywidgets is installed: DuckDB's refusal cannot happen here")
    import nbclient
    import nbformat

    code = CELL.format(path=str(sample_json_copy), cache=str(tmp_path / "cache"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "counts 46" in text, outputs
    _word, _n, m, labels = text.split()
    assert int(m) == int(labels)
