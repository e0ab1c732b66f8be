"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

# --- fetch: the export API stand-in and a client of it -----------------------------------
from vlanalyze.fetch._client import VisualLayerClient
from vlanalyze.testing import StandIn, write_demo_export


class FakeClock:
    """A clock that only moves when something sleeps on it: polling never really waits."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def demo_export(tmp_path: Path) -> Path:
    """A tiny JSON export (3 media, 3 images) to serve."""
    return write_demo_export(tmp_path / "served-export")


@pytest.fixture
def stand_in(demo_export: Path, clock: FakeClock) -> Iterator[StandIn]:
    """The stand-in serving ``demo_export``, on the fake clock."""
    with StandIn(demo_export, clock=clock) as server:
        yield server


@pytest.fixture
def client(stand_in: StandIn, clock: FakeClock) -> Iterator[VisualLayerClient]:
    """A client of ``stand_in`` with its key and secret, on the fake clock, no back-off."""
    with VisualLayerClient(
        stand_in.base_url,
        api_key=stand_in.api_key,
        api_secret=stand_in.api_secret,
        sleep=clock.sleep,
        clock=clock,
        retries=3,
        backoff=0.0,
    ) as api:
        yield api


# --- end of fetch fixtures ---------------------------------------------------------------


# --- query fixtures ----------------------------------------------------------------------
# The sample and the real export, and writers of small hand-made exports (JSON, Parquet,
# ZIP) for the tests of open_export, the loaders and the query CLI. Imports are local so
# this block stays self-contained at the end of the file.

QUERY_REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = QUERY_REPO / "sample_data"
SAMPLE_EXPORT = SAMPLE_DATA / "export-json"  # metadata.json and images/
SAMPLE_PARQUET = SAMPLE_DATA / "export-parquet" / "metadata.parquet"  # the same items
SAMPLE_ZIP = SAMPLE_DATA / "export.zip"  # metadata.json, no images
REAL_EXPORT = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "fixtures"
    / "real-exports"
    / "vl-video-frames-2025.json"
)

HAND_INFO = {
    "schema_version": "1.1",
    "dataset": "hand-made",
    "description": "Exported from hand-made at Visual Layer",
    "export_time": "2025-02-15T18:23:34.164184",
    "exported_by": "tests",
    "total_media_items": 3,
}


class ExportKit:
    """Builds small Visual Layer exports in a test's tmp_path."""

    info = HAND_INFO

    @staticmethod
    def item(media_id: str, **fields: object) -> dict[str, object]:
        """A media item with every documented key; ``fields`` override or add keys."""
        item: dict[str, object] = {
            "media_id": media_id,
            "media_type": "image",
            "file_name": f"{media_id}.jpg",
            "file_path": f"dir/{media_id}.jpg",
            "file_size": "1.00KB",
            "uniqueness_score": 0.5,
            "height": 10,
            "width": 20,
            "url": f"http://app.visual-layer.com/dataset/d/data/image/{media_id}",
            "cluster_id": "cluster-1",
            "metadata_items": [],
        }
        item.update(fields)
        return item

    @staticmethod
    def write_json(
        path: Path,
        items: list[dict[str, object]],
        *,
        info: dict[str, object] | None = None,
        info_last: bool = False,
        bom: bool = False,
        **dumps_kwargs: object,
    ) -> Path:
        """``{"info": ..., "media_items": [...]}`` via json.dumps(**dumps_kwargs)."""
        import json

        top = {"info": info if info is not None else HAND_INFO, "media_items": items}
        if info_last:
            top = {"media_items": items, "info": top["info"]}
        text = json.dumps(top, **dumps_kwargs)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        return path

    @staticmethod
    def write_parquet(
        path: Path,
        items: list[dict[str, object]],
        *,
        info: dict[str, object] | None = None,
        items_as: str = "struct",
    ) -> Path:
        """The Parquet form: ``image_filename`` for ``file_name``, ``info`` in the key-value
        metadata, ``metadata_items`` as list-of-struct (``items_as="struct"``) or JSON text
        (``items_as="json"``)."""
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = []
        for item in items:
            row = {("image_filename" if k == "file_name" else k): v for k, v in item.items()}
            if items_as == "json":
                row["metadata_items"] = json.dumps(row.get("metadata_items", []))
            rows.append(row)
        table = pa.Table.from_pylist(rows)
        meta = {b"info": json.dumps(info if info is not None else HAND_INFO).encode()}
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.replace_schema_metadata(meta), path)
        return path

    @staticmethod
    def zip_folder(folder: Path, archive: Path, *, prefix: str = "") -> Path:
        """A ZIP of every file under ``folder`` (hidden cache folders excluded)."""
        import zipfile

        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder)
                if path.is_file() and not any(p.startswith(".") for p in rel.parts):
                    zf.write(path, prefix + rel.as_posix())
        return archive


@pytest.fixture(scope="session")
def export_kit() -> type[ExportKit]:
    return ExportKit


@pytest.fixture(scope="session")
def sample_export() -> Path:
    """The repository's sample export folder: read it, never write into it (pass cache_dir)."""
    assert (SAMPLE_EXPORT / "metadata.json").is_file(), SAMPLE_EXPORT
    return SAMPLE_EXPORT


@pytest.fixture(scope="session")
def real_export() -> Path:
    """The real export beside the clone (../shared); skipped where it is absent."""
    if not REAL_EXPORT.is_file():
        pytest.skip(f"real export fixture not found at {REAL_EXPORT} (not in a user's clone)")
    return REAL_EXPORT


@pytest.fixture
def sample_json_copy(tmp_path: Path, sample_export: Path) -> Path:
    """A copy of the sample export folder holding metadata.json and images/ only."""
    import shutil

    target = tmp_path / "sample-export"
    shutil.copytree(sample_export / "images", target / "images")
    shutil.copy2(sample_export / "metadata.json", target / "metadata.json")
    return target


# Counts stated in sample_data/README.md.
SAMPLE_COUNTS = {
    "media": 46,
    "labels": 286,
    "objects": 113,
    "issues": 133 + 335,
    "tags": 8,
    "captions": 32,
    "other_metadata": 2,
    "info": 1,
}


def all_tables(ex: Any) -> dict[str, Any]:
    """Every table of the export ``ex``, collected (name -> polars DataFrame)."""
    return {t: ex.table(t).collect() for t in ex.tables}


def sorted_frame(df: Any) -> Any:
    """``df`` sorted by every column: for comparing tables whose row order is no contract."""
    return df.sort(df.columns, nulls_last=True)


@pytest.fixture
def hand_json(tmp_path: Path, export_kit: Any) -> Path:
    """A hand-made metadata.json of five items, in tmp_path/export/."""
    items = [export_kit.item(f"m{i}") for i in range(5)]
    return export_kit.write_json(tmp_path / "export" / "metadata.json", items)


# --- end of query fixtures ---------------------------------------------------------------


def error_line(result: Result) -> str:
    """The one ``Error:`` line of a CLI run that failed cleanly (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable: chmod, or for root (whom chmod does not stop) the
    immutable attribute; skip where neither works."""
    folder.chmod(0o555)
    immutable = False
    try:
        if os.access(folder, os.W_OK) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)], check=False).returncode == 0
        if os.access(folder, os.W_OK):
            pytest.skip("cannot make a folder read-only here (root, and no chattr)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A small filesystem at ``mount`` (tmpfs of ``size``, e.g. "1m"), to fill up in tests;
    skips where it cannot be made (it needs root on Linux)."""
    import sys

    mount.mkdir(parents=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a small filesystem needs root on Linux (mount -t tmpfs)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def jupyter_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec for ``sys.executable`` in a private Jupyter path; returns its name.

    So that notebooks run in this test environment's interpreter, registered nowhere.
    """
    name = "vlanalyze-test-python"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "vlanalyze tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no migration warning
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return name
