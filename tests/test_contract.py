"""The package's outward contract: its public names (httpx-style) and its commands'
documentation (sqlite-utils-style). Each test fails when someone adds a name or an
option without saying so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import vlanalyze
from vlanalyze.cli import main

REPO = Path(__file__).resolve().parent.parent


# --- public names ------------------------------------------------------------------------


def _public_names() -> set[str]:
    """What the package namespace offers: its own non-underscore names and the lazy ones."""
    code = (
        "import vlanalyze\n"
        "print(*sorted(n for n, v in vars(vlanalyze).items() if not n.startswith('_')\n"
        "    and getattr(v, '__module__', '').startswith('vlanalyze')))\n"
        "print(*sorted(vlanalyze._LAZY))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split()) | {"__version__"}


def test_all_is_the_sorted_public_names() -> None:
    assert vlanalyze.__all__ == sorted(_public_names())


def test_every_public_name_resolves() -> None:
    for name in vlanalyze.__all__:
        assert getattr(vlanalyze, name) is not None, name
    assert issubclass(vlanalyze.CacheError, vlanalyze.VLAnalyzeError)
    with pytest.raises(AttributeError):
        vlanalyze.no_such_name  # noqa: B018


# --- commands: help and documentation ----------------------------------------------------


def _commands() -> dict[str, click.Command]:
    assert isinstance(main, click.Group)
    return dict(sorted(main.all_commands.items()))


def _docs() -> str:
    """README.md and the local pages it links."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pages = [readme]
    for link in re.findall(r"\]\(([^)#:]+\.md)\)", readme):
        page = REPO / link
        if page.is_file():
            pages.append(page.read_text(encoding="utf-8"))
    return "\n".join(pages)


def _section(docs: str, command: str) -> str:
    """The text under the heading naming ``vlanalyze <command>``, up to the next heading."""
    match = re.search(rf"^(#+) `vlanalyze {re.escape(command)}`\s*$", docs, re.MULTILINE)
    assert match, f"no section headed `vlanalyze {command}` in README.md or its linked docs"
    rest = docs[match.end() :]
    end = re.search(rf"^#{{1,{len(match.group(1))}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def test_commands_are_found() -> None:
    assert {"info", "sql", "convert", "fetch", "stand-in"} <= set(_commands())


@pytest.mark.parametrize("name", list(_commands()))
def test_every_command_and_option_is_documented(name: str) -> None:
    section = _section(_docs(), name)
    missing = []
    for param in _commands()[name].params:
        if isinstance(param, click.Option):
            if param.hidden:
                continue
            wanted = [o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")]
        else:
            wanted = [(param.name or "").upper()]
        missing += [w for w in wanted if not re.search(rf"{re.escape(w)}(?![\w-])", section)]
    assert not missing, f"vlanalyze {name}: undocumented {missing}"


@pytest.mark.parametrize("name", ["", *_commands()])
def test_every_help_has_an_example(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"] if name else ["--help"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s*Examples?:\n\s+vlanalyze ", result.output, re.MULTILINE), name
