"""The package's layers point one way, read from the code itself (not from a list).

Every module under ``vlanalyze/`` is parsed; every import of a vlanalyze module
(absolute or relative, at the top or inside a function, under TYPE_CHECKING too) is
resolved to the layer it lands in: ``cli``, ``fetch``, ``query``, ``curate``,
``materialize``, ``reporting``, ``testing``, ``demo``, the package's public face
(``vlanalyze/__init__``), or the bottom (``_fs``, ``errors``, ``_metadata``, ...).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vlanalyze"
LAYERS = ("cli", "fetch", "query", "curate", "materialize", "reporting", "testing", "demo")

#: layer -> the layers it must never import.
FORBIDDEN = {
    "query": {"fetch", "curate", "materialize", "reporting", "demo", "cli", "testing"},
    "fetch": {"query", "curate", "materialize", "reporting", "demo", "cli", "testing"},
    "curate": {"fetch", "materialize", "reporting", "demo", "cli", "testing"},
    "materialize": {"fetch", "curate", "reporting", "demo", "cli", "testing"},
    # reporting reads query and curate results and writes one file: it never fetches
    "reporting": {"fetch", "materialize", "demo", "cli", "testing"},
    "testing": {"query", "curate", "materialize", "reporting", "demo", "cli"},
    # the demo shows every layer working together (the stand-in included)
    "demo": {"cli"},
    "bottom": {
        "cli",
        "fetch",
        "query",
        "curate",
        "materialize",
        "reporting",
        "testing",
        "demo",
        "api",
    },
    "api": {"cli", "testing"},
}
#: Front-end libraries only the CLI may use.
CLI_ONLY = {"click", "rich"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    if module == "vlanalyze":
        return "api"  # the public face: imports (lazily) from the library layers
    if module == "vlanalyze.__main__":
        return "cli"  # `python -m vlanalyze` is the CLI
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "bottom"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from vlanalyze import query" imports the sub-package query
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_graph_is_read_from_every_module() -> None:
    names = {_module_name(p) for p in _modules()}
    assert {"vlanalyze.fetch._pull", "vlanalyze.query._open", "vlanalyze.cli"} <= names
    pull = [m for _, m in _imports(PACKAGE / "fetch" / "_pull.py")]
    assert "vlanalyze.fetch._archive" in pull  # resolution works (a self-check)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _module_name(p))
def test_layers_point_one_way(path: Path) -> None:
    me = _module_name(path)
    layer = _layer(me)
    wrong = []
    for line, target in _imports(path):
        top = target.split(".")[0]
        if top in CLI_ONLY and layer != "cli":
            wrong.append(f"line {line}: {target} (only the CLI may use {top})")
        if top != "vlanalyze" or target == "vlanalyze":
            continue
        theirs = _layer(target)
        if theirs in FORBIDDEN.get(layer, set()):
            wrong.append(f"line {line}: {target} ({layer} must not import {theirs})")
    assert not wrong, f"{me} imports:\n" + "\n".join(wrong)


def test_importing_the_library_loads_no_front_end() -> None:
    code = (
        "import sys, vlanalyze\n"
        "vlanalyze.open_export; vlanalyze.pull_export; vlanalyze.convert; vlanalyze.summarize\n"
        "import vlanalyze.testing\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))\n"
        "assert not loaded, loaded\n"
        "assert 'vlanalyze.cli' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
