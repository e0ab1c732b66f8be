"""Hints that name an argument: Python callers read ``overwrite=True``, CLI users the flag."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from vlanalyze.cli import main
from vlanalyze.cli._common import FLAGS
from vlanalyze.errors import CacheError, ExportTimeoutError, Fix, MaterializeError

PACKAGE = Path(__file__).resolve().parent.parent / "vlanalyze"


@pytest.mark.parametrize(
    ("error", "python", "cli"),
    [
        (
            MaterializeError("out.csv already exists", fix=Fix("overwrite", "to replace it")),
            "out.csv already exists (pass overwrite=True to replace it)",
            "out.csv already exists (pass --overwrite to replace it)",
        ),
        (
            ExportTimeoutError("slow", task_id="t1", fix=Fix("task_id", "to resume", "t1")),
            "slow (pass task_id='t1' to resume)",
            "slow (pass --task-id t1 to resume)",
        ),
        (
            CacheError("ro", fix=Fix("cache_dir", "to move it", None, prefix="or ")),
            "ro (or pass cache_dir=... to move it)",
            "ro (or pass --cache-dir CACHE_DIR to move it)",
        ),
        (CacheError("plain", hint="no argument"), "plain (no argument)", "plain (no argument)"),
    ],
    ids=["flag", "value", "chosen-value", "plain-hint"],
)
def test_hint_names_the_argument_or_the_flag(error: Exception, python: str, cli: str) -> None:
    assert str(error) == python
    assert error.describe(FLAGS) == cli  # type: ignore[attr-defined]


def _fixed_arguments() -> set[str]:
    """The argument of every ``Fix(...)`` written in the library, read from the code."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Fix":
                first = node.args[0] if node.args else None
                assert isinstance(first, ast.Constant), f"{path}: Fix(...) needs a literal name"
                found.add(first.value)
    return found


def test_every_argument_a_hint_names_has_a_cli_flag() -> None:
    arguments = _fixed_arguments()
    assert {"overwrite", "cache_dir", "refresh", "task_id"} <= arguments
    assert arguments <= set(FLAGS)
    assert isinstance(main, click.Group)
    options = {o for c in main.all_commands.values() for p in c.params for o in p.opts}
    assert set(FLAGS.values()) <= options
