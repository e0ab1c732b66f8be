"""The README's shell examples run as written on a fresh clone.

Every ``vlanalyze ...`` command in the README's bash blocks that names the bundled
``sample_data/`` runs here (through click, from a copy of the clone's ``sample_data``,
so no cache lands in the repository), with ``echo "..." |`` fed to stdin as the shell
would. The others need a Visual Layer account or a placeholder filled in (``DATASET_ID``,
``EXPORT``); they are listed by ``test_every_example_is_accounted_for``.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vlanalyze.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    """Every `vlanalyze` command line of the README's bash blocks (split at `&&`)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            found += [p.strip() for p in line.split("&&") if "vlanalyze " in p]
    return found


# `vlanalyze demo` needs nothing but the clone: it serves the sample itself.
RUNNABLE = [c for c in _commands() if "sample_data/" in c or c.startswith("vlanalyze demo")]


def test_every_example_is_accounted_for() -> None:
    others = [c for c in _commands() if c not in RUNNABLE]
    # What is left needs the network (fetch) or is a placeholder to fill in.
    assert all(re.search(r"\bvlanalyze fetch DATASET_ID\b", c) for c in others), others
    assert len(RUNNABLE) >= 5


@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_example_runs(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    stdin = None
    if "|" in command:
        feed, command = (part.strip() for part in command.split("|", 1))
        assert feed.startswith("echo "), feed
        stdin = shlex.split(feed)[1] + "\n"
    argv = shlex.split(command)
    assert argv[0] == "vlanalyze"
    result = CliRunner().invoke(main, argv[1:], input=stdin)
    assert result.exit_code == 0, f"{command}\n{result.output}"
    assert result.stdout.strip()
