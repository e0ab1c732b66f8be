"""pull_export end to end against the stand-in: start, wait, download, extract, record."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from vlanalyze.errors import ExportFailedError, MaterializeError, SelectionError
from vlanalyze.fetch._client import VisualLayerClient
from vlanalyze.fetch._pull import PROVENANCE_FILE, archive_path, pull_export
from vlanalyze.materialize._selection import read_media_ids
from vlanalyze.testing import StandIn


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _media_ids(folder: Path) -> list[str]:
    data = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    return [item["media_id"] for item in data["media_items"]]


def test_full_export_with_images_and_provenance(
    client: VisualLayerClient, stand_in: StandIn, demo_export: Path, tmp_path: Path
) -> None:
    polls: list[str] = []
    dest = pull_export(
        client,
        stand_in.dataset_id,
        tmp_path / "out",
        include_images=True,
        on_poll=lambda task: polls.append(task.status),
    ).path
    assert _files(dest) == _files(demo_export) | {PROVENANCE_FILE}
    assert (dest / "metadata.json").read_bytes() == (demo_export / "metadata.json").read_bytes()
    record = json.loads((dest / PROVENANCE_FILE).read_text(encoding="utf-8"))
    (task,) = stand_in.tasks.values()
    assert task.archive is not None
    assert record["task_id"] == task.id and record["dataset_id"] == stand_in.dataset_id
    assert record["archive_sha256"] == hashlib.sha256(task.archive.read_bytes()).hexdigest()
    assert record["request"]["include_images"] is True and record["task_created_at"]
    info = json.loads((demo_export / "metadata.json").read_text(encoding="utf-8"))["info"]
    assert record["export_time"] == info["export_time"]  # the export's own, from metadata
    assert polls[0] == "INIT" and polls[-1] == "COMPLETED"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "served-export"]  # no leftovers
    storage = [r for r in stand_in.requests if r.path.startswith("/storage/")]
    assert storage and not any(r.has_authorization for r in storage)


def test_metadata_only_by_default(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    dest = pull_export(client, stand_in.dataset_id, tmp_path / "out").path
    assert _files(dest) == {"metadata.json", PROVENANCE_FILE}


def test_selective_exports(
    client: VisualLayerClient, stand_in: StandIn, demo_export: Path, tmp_path: Path
) -> None:
    ids = _media_ids(demo_export)
    picked = pull_export(
        client, stand_in.dataset_id, tmp_path / "picked", media_ids=[ids[1]], include_images=True
    ).path
    assert _media_ids(picked) == [ids[1]]
    assert _files(picked) == {"metadata.json", "images/img_001.jpg", PROVENANCE_FILE}
    data = json.loads((demo_export / "metadata.json").read_text(encoding="utf-8"))
    cluster = data["media_items"][0]["cluster_id"]  # items 0 and 2 share it
    cl = pull_export(
        client, stand_in.dataset_id, tmp_path / "cl", cluster_id=cluster, exclude_media_ids=[ids[0]]
    ).path
    assert _media_ids(cl) == [ids[2]]


def test_progress_covers_download_then_extraction(
    client: VisualLayerClient, stand_in: StandIn, demo_export: Path, tmp_path: Path
) -> None:
    events: list[tuple[str, int, int | None]] = []
    step = [""]

    def on_step(name: str) -> None:
        step[0] = name
        events.append((name, -1, None))

    pull_export(
        client,
        stand_in.dataset_id,
        tmp_path / "out",
        include_images=True,
        on_step=on_step,
        on_progress=lambda done, total: events.append((step[0], done, total)),
    )
    assert [e[0] for e in events if e[1] == -1] == ["download", "extract"]
    (task,) = stand_in.tasks.values()
    assert task.archive is not None
    download = [e for e in events if e[0] == "download" and e[1] >= 0]
    assert download[-1][1] == task.archive.stat().st_size
    extract = [e for e in events if e[0] == "extract" and e[1] >= 0]
    unpacked = sum(p.stat().st_size for p in demo_export.rglob("*") if p.is_file())
    assert extract[0][1] == 0 and extract[-1][1] == extract[-1][2] == unpacked


def test_new_files_follow_the_umask(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        dest = pull_export(client, stand_in.dataset_id, tmp_path / "out").path
    finally:
        os.umask(old)
    assert stat.S_IMODE((dest / PROVENANCE_FILE).stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "metadata.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_refuses_a_non_empty_folder_before_starting(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(MaterializeError, match="overwrite=True"):
        pull_export(client, stand_in.dataset_id, dest)
    assert stand_in.requests == []
    assert (dest / "mine.txt").read_text(encoding="utf-8") == "keep me"
    pull_export(client, stand_in.dataset_id, dest, overwrite=True)
    assert _files(dest) == {"metadata.json", PROVENANCE_FILE}


def test_expired_presigned_url_is_refreshed_by_polling_again(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.stale_urls = 1
    pull_export(client, stand_in.dataset_id, tmp_path / "out")
    storage = [r for r in stand_in.requests if r.path.startswith("/storage/")]
    assert len(storage) == 2


def test_resume_a_started_task_and_an_interrupted_download(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    task = client.start_export(stand_in.dataset_id, include_images=True)
    dest = tmp_path / "out"

    def interrupt(done: int, total: int | None) -> None:
        stand_in.truncate_downloads = 0
        raise KeyboardInterrupt

    stand_in.truncate_downloads = 1  # the first download breaks off halfway
    with pytest.raises(KeyboardInterrupt):
        pull_export(client, stand_in.dataset_id, dest, task_id=task.id, on_progress=interrupt)
    part = archive_path(dest, task.id).with_name(archive_path(dest, task.id).name + ".part")
    have = part.stat().st_size
    assert have > 0 and not dest.exists()
    pull_export(client, stand_in.dataset_id, dest, task_id=task.id, include_images=True)
    assert "images/img_000.jpg" in _files(dest) and not part.exists()
    assert sum(r.path.endswith("export_context_async") for r in stand_in.requests) == 1
    assert stand_in.requests[-1].headers["range"] == f"bytes={have}-"


def test_relative_download_uri_end_to_end(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.relative_download_uri = True
    dest = pull_export(client, stand_in.dataset_id, tmp_path / "out").path
    assert (dest / "metadata.json").is_file()


def test_a_format_the_server_cannot_produce_fails_with_its_reason(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    with pytest.raises(ExportFailedError, match=r"no metadata\.parquet"):
        pull_export(client, stand_in.dataset_id, tmp_path / "out", export_format="parquet")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("lines", "ids"),
    [
        (["a\n", "b\n", "a\n"], ["a", "b"]),
        (["# picked\n", "\n", " a \n"], ["a"]),
        (["media_id\n", "a\n", "b\n"], ["a", "b"]),
        (["file_name,media_id\n", "x.jpg,a\n", "y.jpg,b\n"], ["a", "b"]),
        (["media_id,score\r\n", "a,1\r\n"], ["a"]),
    ],
)
def test_read_media_ids(lines: list[str], ids: list[str]) -> None:
    assert read_media_ids(lines) == ids


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["file_name,score\n", "x.jpg,1\n"], "no media_id column"),
        (["\n", "# nothing\n"], "holds no media ids"),
        (["media_id\n"], "holds no media ids"),
    ],
)
def test_read_media_ids_errors(lines: list[str], message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        read_media_ids(lines, source="sel.csv")
