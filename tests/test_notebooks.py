"""The notebooks run top to bottom on the bundled sample (their code cells, in order)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Work on a copy of the sample so the test leaves no cache in the repo.
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    namespace: dict[str, object] = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{notebook.name}", "exec"), namespace)
    assert os.path.isdir(tmp_path / "sample_data" / "export" / ".vlanalyze-cache")
    top = namespace["top"]
    assert top.height == 20  # type: ignore[attr-defined]
    assert top["image_path"].null_count() == 0  # type: ignore[attr-defined]
