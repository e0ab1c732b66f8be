"""CLI commands of the query job: ``info``, ``sql``, ``convert``.

Each is a thin shell over one library call (``summarize``, ``Export.sql``,
``convert``); heavy libraries are imported inside the commands so ``--help`` is fast.
Data goes to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from vlanalyze.cli._common import handle_errors, overwrite_option

if TYPE_CHECKING:
    from vlanalyze.query._export import Export

F = TypeVar("F", bound=Callable[..., Any])

# The same as vlanalyze.materialize._output.FORMATS (a test checks), kept here so that --help does
# not import polars.
FORMATS = ("table", "csv", "tsv", "json", "ndjson", "parquet", "markdown")


def export_options(func: F) -> F:
    """The EXPORT argument and the cache options every query command shares."""
    func = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")(func)
    func = click.option(
        "--refresh", is_flag=True, help="Rebuild the table cache even if it is up to date."
    )(func)
    func = click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        help="Root folder for Parquet caches, one per export (default: .vlanalyze-cache "
        "beside the export, or $VLANALYZE_CACHE_DIR).",
    )(func)
    return click.argument("export", type=click.Path(exists=True))(func)


def open_for_cli(path: str, cache_dir: str | None, refresh: bool, quiet: bool) -> Export:
    """Open an export, with a progress bar on stderr while its cache is built."""
    from vlanalyze.cli._progress import Reporter
    from vlanalyze.query._open import open_export

    with Reporter(quiet or not sys.stderr.isatty()) as reporter:
        return open_export(
            path,
            cache_dir=cache_dir,
            refresh=refresh,
            on_progress=reporter.callback("Reading metadata"),
        )


@click.command()
@export_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--top", default=10, show_default=True, help="How many top labels to list.")
@handle_errors
def info(
    export: str, cache_dir: str | None, refresh: bool, quiet: bool, as_json: bool, top: int
) -> None:
    """Summarize an export: counts per table, issue types, top labels, score
    quantiles, images found/missing.

    EXPORT is the export folder, its ZIP, metadata.json or metadata.parquet.

    \b
    Example:
      vlanalyze info sample_data/export-json
      vlanalyze info exported_dataset/ --json | jq .counts
    """
    from vlanalyze.cli._render import render_summary
    from vlanalyze.query._summary import summarize

    with open_for_cli(export, cache_dir, refresh, quiet) as ex:
        summary = summarize(ex, top=top)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        click.echo(render_summary(summary))


@click.command()
@export_options
@click.argument("query", required=False)
@click.option(
    "--file",
    "query_file",
    type=click.File("r", encoding="utf-8"),
    help="Read the SQL from FILE (- for stdin) instead of QUERY.",
)
@click.option(
    "-p",
    "--param",
    "params",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Bind $NAME in the query to VALUE (repeatable).",
)
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format (default: table on a terminal, csv when piped).",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=0),
    default=40,
    show_default=True,
    help="With --format table: show at most this many rows (0: all); the rest are counted.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@overwrite_option("Replace FILE if it exists.")
@handle_errors
def sql(
    export: str,
    cache_dir: str | None,
    refresh: bool,
    quiet: bool,
    query: str | None,
    query_file: TextIO | None,
    params: tuple[tuple[str, str], ...],
    fmt: str | None,
    max_rows: int,
    output: str | None,
    overwrite: bool,
) -> None:
    """Run SQL over an export's tables: media, labels, objects, issues, tags,
    captions, other_metadata, info.

    QUERY is the SQL text; - reads it from stdin, @FILE (or --file FILE) from a file.
    Several statements separated by ; all run, in order, and the result of the last
    one is shown ($NAME parameters bind in the last statement only).

    On a terminal, --format table shows the first --max-rows rows, as wide as the
    terminal, and says how many more there are: use --format csv or -o FILE for all.

    \b
    Examples:
      vlanalyze sql sample_data/export-json \\
        "SELECT file_path, uniqueness_score FROM media ORDER BY uniqueness_score DESC LIMIT 10"
      vlanalyze sql exported_dataset/ "SELECT * FROM issues WHERE issue_type = \\$t" -p t blur
      vlanalyze sql exported_dataset/ "SELECT * FROM labels" -o labels.parquet
      vlanalyze sql exported_dataset/ @report.sql -f csv > report.csv
      echo "SELECT count(*) FROM media" | vlanalyze sql exported_dataset/ -
    """
    from vlanalyze.materialize._direct import DIRECT_FORMATS, write_result

    text = _query_text(query, query_file)
    fmt = fmt or _default_format(output)
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise click.UsageError("parquet output is binary: write it to a file with -o FILE")
    with open_for_cli(export, cache_dir, refresh, quiet) as ex:
        if fmt in DIRECT_FORMATS:  # DuckDB writes these itself: polars is not loaded
            sys.stdout.flush()
            target = output or sys.stdout.buffer
            rows = write_result(ex, text, fmt, target, params=dict(params), overwrite=overwrite)
            if output:
                click.echo(f"Wrote {_rows(rows)} to {output}", err=True)
            else:
                sys.stdout.buffer.flush()
            return
        from vlanalyze.materialize._output import render, write_file

        batches = ex.sql_batches(text, params=dict(params))
        if output:
            rows = write_file(batches, fmt, output, overwrite=overwrite)
            click.echo(f"Wrote {_rows(rows)} to {output}", err=True)
        else:
            sys.stdout.flush()
            width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
            render(batches, fmt, sys.stdout.buffer, max_rows=max_rows or None, width=width)
            sys.stdout.buffer.flush()


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _query_text(query: str | None, query_file: TextIO | None) -> str:
    """The SQL to run: QUERY, stdin for -, a file for @FILE or --file."""
    if query_file is not None:
        if query is not None:
            raise click.UsageError("give the SQL as QUERY or with --file, not both")
        return _read_sql(query_file, query_file.name)
    if query is None:
        raise click.UsageError("give the SQL: QUERY, - for stdin, @FILE or --file FILE")
    if query == "-":
        return _read_sql(sys.stdin, "stdin")
    if query.startswith("@"):
        try:
            with open(query[1:], encoding="utf-8") as fh:
                return _read_sql(fh, query[1:])
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {query[1:]}: {exc.strerror}", param_hint="QUERY"
            ) from None
    return query


def _read_sql(stream: TextIO, name: str) -> str:
    text = stream.read()
    if not text.strip():
        raise click.BadParameter(f"{name} holds no SQL", param_hint="QUERY")
    return text


def _default_format(output: str | None) -> str:
    if output:
        suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
        by_suffix = {
            "csv": "csv",
            "tsv": "tsv",
            "json": "json",
            "ndjson": "ndjson",
            "jsonl": "ndjson",
            "parquet": "parquet",
            "md": "markdown",
        }
        return by_suffix.get(suffix, "csv")
    return "table" if sys.stdout.isatty() else "csv"


@click.command()
@export_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write <table>.parquet files into.",
)
@overwrite_option("Replace table files that already exist.")
@handle_errors
def convert(
    export: str, cache_dir: str | None, refresh: bool, quiet: bool, output: str, overwrite: bool
) -> None:
    """Write the tidy tables as plain Parquet files (one per table), for any engine.

    \b
    Example:
      vlanalyze convert sample_data/export-json -o tables/
      duckdb -c "SELECT count(*) FROM 'tables/labels.parquet'"
    """
    from vlanalyze.materialize._convert import convert as convert_export

    with open_for_cli(export, cache_dir, refresh, quiet) as ex:
        paths = convert_export(ex, output, overwrite=overwrite)
    for path in paths:
        click.echo(str(path))
