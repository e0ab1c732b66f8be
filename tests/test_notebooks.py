"""The notebooks run top to bottom on the bundled sample, in a real Jupyter kernel.

A real kernel (ipykernel, driven by nbclient), not ``exec()``: code that behaves
differently inside Jupyter (DuckDB's progress bar wants ipywidgets there) must fail here.
The kernel is this test run's own interpreter, through a kernelspec written into a
temporary Jupyter path, so it works in a fresh virtual environment with nothing
registered.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra")
nbformat = pytest.importorskip("nbformat", reason="nbformat comes with nbclient")
pytest.importorskip("ipykernel", reason="ipykernel is in the dev extra")

REPO = Path(__file__).resolve().parents[1]
# The job notebooks (curate_training_subset, sql_tour) have their own checks:
# tests/test_notebook_jobs.py.
NOTEBOOKS = [REPO / "notebooks" / "explore_export.ipynb"]

# Appended to the notebook and run in the same kernel: what the test checks, as JSON.
PROBE = """
import json as _json
print(_json.dumps({
    "top_rows": top.height,
    "top_missing_images": top["image_path"].null_count(),
    "top_paths": top["file_path"].to_list(),
    "keep_paths": sorted(keep["file_path"].to_list()),
    "media": vla.open_export(EXPORT).counts["media"],
}))
"""


def _run(notebook: Path, workdir: Path, kernel: str) -> tuple[Any, dict[str, Any]]:
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=120, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    probe = [o for o in nb.cells[-1].outputs if o.get("name") == "stdout"]
    return nb, json.loads("".join(o["text"] for o in probe))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel(notebook: Path, tmp_path: Path, jupyter_kernel: str) -> None:
    # Work on a copy of the sample so the test leaves no cache in the repo.
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    (tmp_path / "notebooks").mkdir()
    nb, probe = _run(notebook, tmp_path / "notebooks", jupyter_kernel)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    assert (tmp_path / "sample_data" / "export-json" / ".vlanalyze-cache").is_dir()
    assert probe["media"] == 46
    assert probe["top_rows"] == 20 and probe["top_missing_images"] == 0
    # The heading promises the 20 most unique images: the cell shows all 20.
    top_cell = next(c for c in nb.cells if "top = ex.sql" in c.source)
    html = "".join(o["data"].get("text/html", "") for o in top_cell.outputs if "data" in o)
    assert html.split("<tbody>", 1)[1].count("<tr>") == 20
    # Dedupe at 0.96: an image without a duplicates issue at that level is its own group,
    # so the three most unique images (outliers, in no group) are kept.
    assert set(probe["top_paths"][:3]) <= set(probe["keep_paths"])
    assert len(probe["keep_paths"]) == 16  # 12 groups + 4 images in none at 0.96
