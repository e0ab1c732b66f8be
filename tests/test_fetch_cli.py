"""``vlanalyze fetch`` and ``vlanalyze stand-in`` through click's CliRunner / a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vlanalyze.cli import main
from vlanalyze.testing import StandIn


def _run(stand_in: StandIn, *args: str, env: dict[str, str] | None = None, **kw: str) -> Result:
    base = {
        "VL_BASE_URL": stand_in.base_url,
        "VL_API_KEY": stand_in.api_key or "",
        "VL_API_SECRET": stand_in.api_secret or "",
        "VL_TOKEN": "",
    }
    runner = CliRunner()
    return runner.invoke(main, ["fetch", *args], env={**base, **(env or {})}, **kw)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(autouse=True)
def _fast(stand_in: StandIn) -> None:
    stand_in.polls_to_complete = 0  # the CLI polls with real sleeps


def test_fetch_with_images(stand_in: StandIn, tmp_path: Path) -> None:
    out = tmp_path / "exported_dataset"
    result = _run(stand_in, stand_in.dataset_id, "-o", str(out), "--images")
    assert result.exit_code == 0, result.output
    assert (out / "metadata.json").is_file() and (out / "images" / "img_000.jpg").is_file()
    assert f"to {out}" in result.stdout
    assert "stand-in-secret" not in result.output


def test_quiet_prints_no_progress(stand_in: StandIn, tmp_path: Path) -> None:
    result = _run(stand_in, stand_in.dataset_id, "-o", str(tmp_path / "o"), "--quiet")
    assert result.exit_code == 0 and result.stderr == ""


def test_media_ids_from_stdin(stand_in: StandIn, demo_export: Path, tmp_path: Path) -> None:
    data = json.loads((demo_export / "metadata.json").read_text(encoding="utf-8"))
    wanted = data["media_items"][2]["media_id"]
    out = tmp_path / "picked"
    result = _run(
        stand_in, stand_in.dataset_id, "-o", str(out), "--media-ids", "-", input=f"{wanted}\n"
    )
    assert result.exit_code == 0, result.output
    items = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["media_items"]
    assert [item["media_id"] for item in items] == [wanted]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("bad-secret", "VL_API_KEY and VL_API_SECRET"),
        ("forbidden", "403"),
        ("unknown", "dataset nope not found"),
        ("indexing", "not READY (status: INDEXING)"),
        ("failed", "ended FAILED: disk full"),
        ("no-creds", "no Visual Layer credentials"),
    ],
)
def test_errors_are_one_line(stand_in: StandIn, tmp_path: Path, setup: str, message: str) -> None:
    dataset, env = stand_in.dataset_id, {}
    if setup == "bad-secret":
        env = {"VL_API_SECRET": "another-secret-that-is-long-enough-for-jwt"}
    elif setup == "forbidden":
        stand_in.fail(403)
    elif setup == "unknown":
        dataset = "nope"
    elif setup == "indexing":
        stand_in.dataset_status = "INDEXING"
    elif setup == "failed":
        stand_in.final_status, stand_in.result_message = "FAILED", "disk full"
    else:
        env = {"VL_BASE_URL": "", "VL_API_KEY": "", "VL_API_SECRET": ""}
    line = _one_error_line(_run(stand_in, dataset, "-o", str(tmp_path / "o"), env=env))
    assert message in line
    assert "another-secret" not in line


def test_timeout_says_how_to_resume(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.final_status = "QUEUED"
    args = [stand_in.dataset_id, "-o", str(tmp_path / "o"), "--poll-interval", "0.1"]
    line = _one_error_line(_run(stand_in, *args, "--timeout", "1", "-q"))
    (task_id,) = stand_in.tasks
    assert f"--task-id {task_id}" in line


@pytest.mark.parametrize("flag", ["--overwrite", "--force"])  # --force: the hidden alias
def test_non_empty_output_needs_overwrite(stand_in: StandIn, tmp_path: Path, flag: str) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("x", encoding="utf-8")
    line = _one_error_line(_run(stand_in, stand_in.dataset_id, "-o", str(tmp_path / "o")))
    assert "pass --overwrite to replace it" in line and "overwrite=True" not in line
    result = _run(stand_in, stand_in.dataset_id, "-o", str(tmp_path / "o"), flag, "-q")
    assert result.exit_code == 0 and not (tmp_path / "o" / "x").exists()


def test_usage_mistakes_exit_2(stand_in: StandIn, tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    assert _run(stand_in, stand_in.dataset_id, "-o", out, "--exclude-media-id", "m").exit_code == 2
    assert _run(stand_in, stand_in.dataset_id).exit_code == 2
    assert _run(stand_in, stand_in.dataset_id, "-o", out, "--format", "xml").exit_code == 2


def test_stand_in_command_serves_until_ctrl_c(demo_export: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    with subprocess.Popen(
        [sys.executable, "-m", "vlanalyze", "stand-in", str(demo_export)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        first, base = proc.stdout.readline(), proc.stdout.readline()
        assert "Stand-in" in first and "VL_BASE_URL=http://127.0.0.1:" in base
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Stopped." in err and "Traceback" not in err


def test_stand_in_command_rejects_a_folder_without_metadata(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["stand-in", str(tmp_path)])
    assert result.exit_code == 1 and "no metadata.json" in result.output
