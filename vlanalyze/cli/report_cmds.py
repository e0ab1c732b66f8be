"""CLI command of the "see it" job: ``report`` (a thin shell over ``vla.report``)."""

from __future__ import annotations

import sys

import click

from vlanalyze.cli._common import handle_errors, overwrite_option
from vlanalyze.cli.query_cmds import export_options, open_for_cli


@click.command()
@export_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@click.option(
    "--selection",
    type=click.Path(exists=True, dir_okay=False),
    help="A selection file (from vlanalyze select) to report on too.",
)
@click.option(
    "--dedupe",
    metavar="THRESHOLD",
    help="Duplicate level to show groups at: a threshold, min or max (default: min).",
)
@click.option(
    "--groups",
    type=click.IntRange(0),
    metavar="N",
    default=24,
    show_default=True,
    help="Duplicate groups shown (the biggest).",
)
@click.option(
    "--clusters",
    type=click.IntRange(0),
    metavar="N",
    default=16,
    show_default=True,
    help="Clusters shown (the largest).",
)
@click.option("--title", help="Page title (default: the export's dataset name).")
@overwrite_option("Replace FILE if it exists.")
@handle_errors
def report(
    export: str,
    cache_dir: str | None,
    refresh: bool,
    quiet: bool,
    output: str,
    selection: str | None,
    dedupe: str | None,
    groups: int,
    clusters: int,
    title: str | None,
    overwrite: bool,
) -> None:
    """Write one self-contained HTML report of an export: overview and plots,
    duplicate groups (the kept one marked), clusters, and with --selection its funnel,
    splits, leakage and chosen images. Opens offline, from disk.

    \b
    Examples:
      vlanalyze report sample_data/export-json -o report.html
      vlanalyze select exported_dataset/ --dedupe min --top 1000 \\
          --split train=0.8,val=0.2 -o picked.parquet
      vlanalyze report exported_dataset/ --selection picked.parquet -o report.html
    """
    from vlanalyze.cli._progress import Reporter
    from vlanalyze.reporting._report import ReportLimits
    from vlanalyze.reporting._report import report as make_report

    limits = ReportLimits(groups=groups, clusters=clusters)
    with (
        open_for_cli(export, cache_dir, refresh, quiet) as ex,
        Reporter(quiet or not sys.stderr.isatty()) as reporter,
    ):
        made = make_report(
            ex,
            output,
            selection=selection,
            dedupe=dedupe,
            limits=limits,
            title=title,
            overwrite=overwrite,
            on_progress=reporter.callback("Thumbnails"),
        )
    shown = ", ".join(f"{n} images in {name}" for name, n in made.tiles.items())
    click.echo(f"Wrote {made.path} ({made.bytes / 1e6:.1f} MB): {shown}", err=True)
    click.echo(str(made.path))  # on stdout: `xdg-open "$(vlanalyze report ...)"`
