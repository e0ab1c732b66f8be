"""The ``vlanalyze`` command: a thin click shell over the library.

Each command parses its options, calls one public library function and renders the
result. Heavy libraries (polars, duckdb, pyarrow, requests) are imported inside the
commands, so ``vlanalyze --help`` stays fast.
"""

from __future__ import annotations

import importlib

import click

from vlanalyze._version import __version__

# name -> (module, attribute): a command's module is imported only when that command
# runs (or --help lists them all), so `vlanalyze sql` does not pay for curate's,
# fetch's or the report's imports on every short query.
_COMMANDS = {
    "info": ("vlanalyze.cli.query_cmds", "info"),
    "sql": ("vlanalyze.cli.query_cmds", "sql"),
    "convert": ("vlanalyze.cli.query_cmds", "convert"),
    "top": ("vlanalyze.cli.curate_cmds", "top"),
    "select": ("vlanalyze.cli.curate_cmds", "select"),
    "fetch": ("vlanalyze.cli.fetch_cmds", "fetch"),
    "stand-in": ("vlanalyze.cli.fetch_cmds", "stand_in"),
    "materialize": ("vlanalyze.cli.materialize_cmds", "materialize"),
    "report": ("vlanalyze.cli.report_cmds", "report"),
    "demo": ("vlanalyze.cli.demo_cmds", "demo"),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        command: click.Command = getattr(importlib.import_module(spec[0]), spec[1])
        return command

    @property
    def all_commands(self) -> dict[str, click.Command]:
        """Every command, imported (for tests and docs)."""
        ctx = click.Context(self)
        return {name: cmd for name in _COMMANDS if (cmd := self.get_command(ctx, name))}


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vlanalyze")
def main() -> None:
    """Fetch, query and materialize Visual Layer dataset exports.

    \b
    Examples:
      vlanalyze info sample_data/export-json
      vlanalyze sql sample_data/export-json "SELECT count(*) FROM media"
      vlanalyze select exported_dataset/ --dedupe min --top 1000 -o subset.csv
      vlanalyze fetch DATASET_ID -o exported_dataset/
      vlanalyze materialize exported_dataset/ selection.csv -o picked/ --layout yolo
    """
