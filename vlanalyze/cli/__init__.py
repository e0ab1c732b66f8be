"""The ``vlanalyze`` command: a thin click shell over the library.

Each command parses its options, calls one public library function and renders the
result. Heavy libraries (polars, duckdb, pyarrow, requests) are imported inside the
commands, so ``vlanalyze --help`` stays fast.
"""

from __future__ import annotations

import click

from vlanalyze._version import __version__
from vlanalyze.cli.curate_cmds import select, top
from vlanalyze.cli.demo_cmds import demo
from vlanalyze.cli.fetch_cmds import fetch, stand_in
from vlanalyze.cli.materialize_cmds import materialize
from vlanalyze.cli.query_cmds import convert, info, sql
from vlanalyze.cli.report_cmds import report


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


main.add_command(info)
main.add_command(sql)
main.add_command(convert)
main.add_command(top)
main.add_command(select)
main.add_command(fetch)
main.add_command(stand_in)
main.add_command(materialize)
main.add_command(report)
main.add_command(demo)
