"""The job notebooks run top to bottom on the bundled sample, in a real Jupyter kernel
(nbclient + ipykernel), and say what they promise: the SQL tour's ten SQL answers equal
their polars twins; the curation notebook selects, materializes 12 images (a second run
writes nothing) and loads the train split."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra")
nbformat = pytest.importorskip("nbformat", reason="nbformat comes with nbclient")
pytest.importorskip("ipykernel", reason="ipykernel is in the dev extra")

REPO = Path(__file__).resolve().parents[1]


def run_notebook(name: str, tmp_path: Path, jupyter_kernel: str) -> Any:
    """Run ``notebooks/<name>`` on a copy of the sample; fail on any error output."""
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip outputs"
    client = nbclient.NotebookClient(
        nb,
        kernel_name=jupyter_kernel,
        timeout=300,
        resources={"metadata": {"path": str(tmp_path / "notebooks")}},
    )
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    return nb


def _text(cell: Any) -> str:
    return "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)


@pytest.mark.slow
def test_sql_tour(tmp_path: Path, jupyter_kernel: str) -> None:
    nb = run_notebook("sql_tour.ipynb", tmp_path, jupyter_kernel)
    checks = [c for c in nb.cells if c.cell_type == "code" and "same(q" in c.source]
    assert len(checks) == 10
    assert [_text(c) for c in checks] == ["True"] * 10
    questions = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert len(questions) >= 10


@pytest.mark.slow
def test_curate_training_subset(tmp_path: Path, jupyter_kernel: str) -> None:
    nb = run_notebook("curate_training_subset.ipynb", tmp_path, jupyter_kernel)
    by_source = {c.source.splitlines()[0]: _text(c) for c in nb.cells if c.cell_type == "code"}
    funnel = next(t for s, t in by_source.items() if s == "sel.funnel")
    assert "dedupe" in funnel and "split" in funnel
    result = next(t for s, t in by_source.items() if s.startswith("plan = vla.plan_materialize"))
    assert "written=12" in result
    assert next(t for s, t in by_source.items() if s.startswith("again =")) == "True"
    loaded = next(t for s, t in by_source.items() if s.startswith("train = OUT"))
    assert loaded.startswith("(") and ", 8," in loaded.replace("\n", "")  # 8 train images
