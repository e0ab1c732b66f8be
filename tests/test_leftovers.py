"""Leftovers of killed runs are cleaned by the next run (issue #12): by age and by lock,
never a file another live process is writing."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from vlanalyze._fs import TEMP_PREFIX
from vlanalyze.cli import main


def _old(path: Path, *, hours: float = 2) -> Path:
    path.write_bytes(b"half a file")
    then = time.time() - hours * 3600
    os.utime(path, (then, then))
    return path


def test_sql_output_removes_stale_temporary_files_but_not_a_live_one(
    tmp_path: Path, export_kit: Any
) -> None:
    path = export_kit.write_json(tmp_path / "metadata.json", [export_kit.item("m")])
    out = tmp_path / "out" / "media.csv"
    out.parent.mkdir()
    stale = _old(out.parent / f".media.csv{TEMP_PREFIX}part-dead01")
    recent = out.parent / f".media.csv{TEMP_PREFIX}part-young1"
    recent.write_bytes(b"being written, maybe")  # too young to judge
    live = _old(out.parent / f".media.csv{TEMP_PREFIX}part-live01")
    other = _old(out.parent / f".other.csv{TEMP_PREFIX}part-dead02")  # another target's
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer holds its file's lock
        args = ["sql", str(path), "SELECT * FROM media", "-o", str(out)]
        result = CliRunner().invoke(main, [*args, "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 0, result.output
    finally:
        os.close(fd)
    assert out.read_text().count("\n") == 2
    assert not stale.exists()
    assert recent.exists() and live.exists() and other.exists()
