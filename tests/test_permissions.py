"""Files vlanalyze writes for the user follow the umask, as ``cp`` and ``duckdb`` do: a
training job running as another user of a shared machine can read them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLE_EXPORT

from vlanalyze.cli import main
from vlanalyze.testing import StandIn


@pytest.fixture(params=[0o022, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sql_output_follows_the_umask(umask: int, tmp_path: Path) -> None:
    target = tmp_path / "top.csv"
    args = ["sql", str(SAMPLE_EXPORT), "--cache-dir", str(tmp_path / "c"), "-q"]
    result = CliRunner().invoke(main, [*args, "SELECT 1 AS n", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert _mode(target) == 0o666 & ~umask


def test_provenance_follows_the_umask(umask: int, stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.polls_to_complete = 0
    out = tmp_path / "exported"
    env = {
        "VL_BASE_URL": stand_in.base_url,
        "VL_API_KEY": stand_in.api_key or "",
        "VL_API_SECRET": stand_in.api_secret or "",
    }
    result = CliRunner().invoke(main, ["fetch", stand_in.dataset_id, "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert _mode(out / "vlanalyze-provenance.json") == 0o666 & ~umask
    assert _mode(out / "metadata.json") == 0o666 & ~umask
