"""Fetch under faults and odd settings (issue #12): a base URL with a password is refused
before anything is sent or written; a full disk while downloading names the task to
resume; a task the server forgot is not "dataset not found"; a resumed task's provenance
records what that task holds, not today's flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import error_line, tmpfs

from vlanalyze.cli import main
from vlanalyze.errors import APIError, ConfigurationError, DownloadError
from vlanalyze.fetch._client import VisualLayerClient
from vlanalyze.fetch._pull import PROVENANCE_FILE, pull_export
from vlanalyze.testing import StandIn, write_demo_export


def test_a_base_url_with_a_password_is_refused(stand_in: StandIn, tmp_path: Path) -> None:
    host = stand_in.base_url.split("://", 1)[1]
    url = f"http://user:s3cr3t-pw@{host}"
    with pytest.raises(ConfigurationError, match="user name or password") as err:
        VisualLayerClient(url, token="t")
    assert "s3cr3t-pw" not in str(err.value)
    env = {"VL_BASE_URL": url, "VL_TOKEN": "t", "VL_API_KEY": "", "VL_API_SECRET": ""}
    result = CliRunner().invoke(
        main, ["fetch", stand_in.dataset_id, "-o", str(tmp_path / "o")], env=env
    )
    line = error_line(result)
    assert "s3cr3t-pw" not in result.output and "VL_BASE_URL" in line
    assert not (tmp_path / "o").exists()
    assert not stand_in.requests  # nothing was sent


def test_a_task_the_server_forgot(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    task = client.start_export(stand_in.dataset_id)
    stand_in.tasks.clear()  # the server restarted
    with pytest.raises(APIError) as err:
        pull_export(client, stand_in.dataset_id, tmp_path / "out", task_id=task.id)
    message = str(err.value)
    assert task.id in message and "no longer knows" in message
    assert "dataset" not in message.split("(404)")[0].replace(
        f"of dataset {stand_in.dataset_id}", ""
    )
    assert "new export" in message


def test_resumed_task_records_its_own_flags(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    task = client.start_export(stand_in.dataset_id, include_images=True)
    dest = pull_export(client, stand_in.dataset_id, tmp_path / "out", task_id=task.id)
    record = json.loads((dest / PROVENANCE_FILE).read_text(encoding="utf-8"))
    assert record["request"]["include_images"] is True  # the task's, not today's default
    assert record["request"]["export_format"] == "json"
    assert record["request"]["media_ids"] is None  # unknown, not "none"


def test_disk_full_while_downloading_names_the_task(
    tmp_path: Path, client: VisualLayerClient, stand_in: StandIn
) -> None:
    big = write_demo_export(tmp_path / "big-export", items=200)
    stand_in.export_dir = big
    with tmpfs(tmp_path / "disk", "8k") as disk:
        task = client.start_export(stand_in.dataset_id, include_images=True)
        with pytest.raises(DownloadError) as err:
            pull_export(client, stand_in.dataset_id, disk / "out", task_id=task.id)
        message = str(err.value)
        assert "no space left on device" in message and "free disk space" in message
        assert f"--task-id {task.id}" in message


def test_abandoned_downloads_of_other_tasks_are_removed(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    """A partial download untouched for over a day and unlocked is removed by the next
    fetch beside it; a recent one, or one a live download holds, stays."""
    import fcntl
    import os
    import time

    def part(task: str, *, days: float) -> Path:
        path = tmp_path / f".out.{task}.zip.part"
        path.write_bytes(b"PK half")
        then = time.time() - days * 86400
        os.utime(path, (then, then))
        return path

    dead, young, live = part("dead", days=3), part("young", days=0.1), part("live", days=3)
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a download in another process
        pull_export(client, stand_in.dataset_id, tmp_path / "out")
    finally:
        os.close(fd)
    assert not dead.exists()
    assert young.exists() and live.exists()
    assert (tmp_path / "out" / PROVENANCE_FILE).is_file()
