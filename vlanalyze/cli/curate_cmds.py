"""CLI commands of the curate job: ``top`` and ``select``.

Thin shells over :func:`vlanalyze.select` / :func:`vlanalyze.top`: parse the rules,
call the library once, write the selection like ``sql`` does (``-o`` atomic, format
from ``--format`` or the extension, stdout when piped, ``-o -`` for stdout), and print
the funnel and the leakage report to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from vlanalyze.cli._common import handle_errors, overwrite_option
from vlanalyze.cli.query_cmds import FORMATS, _default_format, export_options, open_for_cli

if TYPE_CHECKING:
    from vlanalyze.curate._select import Selection

F = TypeVar("F", bound=Callable[..., Any])
KEEP = ("uniqueness", "resolution", "labelled", "first")
POS = click.IntRange(min=1)


def output_options(func: F) -> F:
    """-o/--output, --format and --overwrite, as ``sql`` has them."""
    func = overwrite_option("Replace output files that exist.")(func)
    func = click.option(
        "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE ('-': stdout)."
    )(func)
    return click.option(
        "--format",
        "-f",
        "fmt",
        type=click.Choice(FORMATS),
        help="Output format (default: from the extension; table on a terminal, csv piped).",
    )(func)


def _emit(sel: Selection, output: str | None, fmt: str | None, overwrite: bool) -> None:
    from vlanalyze.materialize._output import render, write_file

    to_stdout = output in (None, "-")
    fmt = fmt or _default_format(None if to_stdout else output)
    if to_stdout:
        if fmt == "parquet" and sys.stdout.isatty():
            raise click.UsageError("parquet output is binary: write it to a file with -o FILE")
        sys.stdout.flush()
        meta = sel.metadata() if fmt == "parquet" else None
        render(sel.batches(), fmt, sys.stdout.buffer, metadata=meta)
        sys.stdout.buffer.flush()
    else:
        assert output is not None
        meta = sel.metadata() if fmt == "parquet" else None
        rows = write_file(sel.batches(), fmt, output, overwrite=overwrite, metadata=meta)
        click.echo(f"Wrote {rows} rows to {output}", err=True)


def _report(sel: Selection) -> None:
    """The funnel, then the leakage report, on stderr."""
    rows = [("step", "rows in", "rows out", "removed")]
    rows += [(str(s), str(i), str(o), str(r)) for s, i, o, r in sel.funnel.iter_rows()]
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        click.echo("  ".join(cells), err=True)
    leak = sel.leakage
    if leak is not None:
        level = leak["loosest_level"]
        at = f" at {level:g}" if isinstance(level, float) else ""
        click.echo(
            f"Leakage (split grouped by {leak['group']}): "
            f"{leak['duplicate_groups_across_splits']} near-duplicate groups{at} and "
            f"{leak['videos_across_splits']} videos span more than one split",
            err=True,
        )


def _check_targets(overwrite: bool, *paths: str | None) -> None:
    from vlanalyze._fs import OVERWRITE
    from vlanalyze.errors import MaterializeError

    for path in paths:
        if path and path != "-" and Path(path).exists() and not overwrite:
            raise MaterializeError(f"{path} already exists", fix=OVERWRITE)


@click.command()
@export_options
@click.option("-n", "--top", "n", type=POS, required=True, metavar="N", help="How many rows.")
@click.option(
    "--by", default="uniqueness_score", show_default=True, metavar="COLUMN", help="Ranking column."
)
@click.option("--ascending", is_flag=True, help="Lowest first.")
@output_options
@handle_errors
def top(
    export: str,
    cache_dir: str | None,
    refresh: bool,
    quiet: bool,
    n: int,
    by: str,
    ascending: bool,
    fmt: str | None,
    output: str | None,
    overwrite: bool,
) -> None:
    """The N media with the highest --by value (default uniqueness_score), ties by
    media_id: the export page's pandas recipe, sort_values(...).head(N).

    \b
    Example:
      vlanalyze top sample_data/export-json -n 10
      vlanalyze top exported_dataset/ -n 100 -o top_unique_images.csv
    """
    from vlanalyze.curate._select import top as top_rows

    _check_targets(overwrite, output)
    with (
        open_for_cli(export, cache_dir, refresh, quiet) as ex,
        top_rows(ex, n, by=by, ascending=ascending) as sel,
    ):
        _emit(sel, output, fmt, overwrite)


_RULES: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--where",),
        {
            "multiple": True,
            "metavar": "SQL",
            "help": "SQL predicate over media (repeatable, ANDed).",
        },
    ),
    (
        ("--label", "labels"),
        {"multiple": True, "metavar": "NAME", "help": "Keep images with this label (any of)."},
    ),
    (("--all-labels",), {"is_flag": True, "default": None, "help": "Require every --label."}),
    (
        ("--no-label", "no_labels"),
        {"multiple": True, "metavar": "NAME", "help": "Drop images with this label."},
    ),
    (
        ("--label-source",),
        {"metavar": "SRC", "help": "Only labels of this source (User, Visual Layer, Model)."},
    ),
    (
        ("--tag", "tags"),
        {"multiple": True, "metavar": "NAME", "help": "Keep items with this user tag (any of)."},
    ),
    (
        ("--no-tag", "no_tags"),
        {"multiple": True, "metavar": "NAME", "help": "Drop items with this user tag."},
    ),
    (("--media-type",), {"type": click.Choice(["image", "video_frame"])}),
    (
        ("--cluster", "clusters"),
        {"multiple": True, "metavar": "ID", "help": "Keep this cluster id (any of)."},
    ),
    (
        ("--exclude-issue", "exclude_issues"),
        {"multiple": True, "metavar": "TYPE[>=CONF]", "help": "Drop items with this issue."},
    ),
    (
        ("--exclude-object-issue", "exclude_object_issues"),
        {"multiple": True, "metavar": "TYPE[>=CONF]", "help": "Drop items with an object issue."},
    ),
    (("--dedupe",), {"metavar": "THRESHOLD", "help": "One image per duplicate group (min|max)."}),
    (("--keep",), {"type": click.Choice(KEEP), "help": "Dedupe survivor (default uniqueness)."}),
    (
        ("--per-cluster",),
        {"type": POS, "metavar": "N", "help": "At most N per cluster, best by --by."},
    ),
    (
        ("--per-video",),
        {"type": POS, "metavar": "N", "help": "At most N frames per video, best by --by."},
    ),
    (("--top",), {"type": POS, "metavar": "N", "help": "The best N by --by."}),
    (("--by",), {"metavar": "COLUMN", "help": "Ranking column (default uniqueness_score)."}),
    (("--ascending",), {"is_flag": True, "default": None, "help": "Rank lowest first."}),
    (
        ("--sample",),
        {"type": POS, "metavar": "N", "help": "A seeded sample of N, proportional per stratum."},
    ),
    (("--stratify",), {"metavar": "label|COLUMN", "help": "Strata of --sample."}),
    (("--split",), {"metavar": "NAME=FRAC,...", "help": "e.g. train=0.8,val=0.1,test=0.1"}),
    (("--group",), {"metavar": "duplicates[@T]|cluster|video|none", "help": "Split groups."}),
    (
        ("--seed",),
        {"type": int, "metavar": "S", "help": "Seed of --sample and --split (default 0)."},
    ),
]


def rule_options(func: F) -> F:
    """Every rule of ``select`` as an option; an option not given is None (or empty)."""
    for decls, attrs in reversed(_RULES):
        func = click.option(*decls, **attrs)(func)
    return func


@click.command()
@export_options
@rule_options
@click.option(
    "--removed", type=click.Path(dir_okay=False), help="Write dropped rows (step, reason) to FILE."
)
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False), help="Read rules (TOML).")
@click.option("--save-recipe", type=click.Path(dir_okay=False), help="Write the rules as TOML.")
@output_options
@handle_errors
def select(
    export: str,
    cache_dir: str | None,
    refresh: bool,
    quiet: bool,
    removed: str | None,
    recipe: str | None,
    save_recipe: str | None,
    fmt: str | None,
    output: str | None,
    overwrite: bool,
    **rules: Any,
) -> None:
    """Pick a training subset. Rules apply in a fixed order: filters, issue gates,
    dedupe, caps, top/sample, split. The funnel (and, with --split, a leakage
    report) goes to stderr.

    \b
    Example:
      vlanalyze select sample_data/export-json --exclude-issue blur \\
        --dedupe 0.96 --per-cluster 5 --top 20 --split train=0.8,val=0.1,test=0.1 \\
        -o subset.csv --removed dropped.csv --save-recipe subset.toml
      vlanalyze select exported_dataset/ --recipe subset.toml -o subset.parquet
    """
    from vlanalyze._fs import write_text_atomic
    from vlanalyze.curate._recipe import Recipe
    from vlanalyze.curate._select import select as select_rows

    _check_targets(overwrite, output, removed, save_recipe)
    base = Recipe.from_toml(Path(recipe).read_text("utf-8"), source=recipe) if recipe else None
    given: dict[str, Any] = {
        k: (v or None) if isinstance(v, tuple) else v for k, v in rules.items()
    }
    with (
        open_for_cli(export, cache_dir, refresh, quiet) as ex,
        select_rows(ex, base, **given, keep_removed=removed is not None) as sel,
    ):
        if not quiet:
            _report(sel)
        _emit(sel, output, fmt, overwrite)
        if removed:
            rows = sel.write(removed, format=fmt_of(removed), overwrite=overwrite, removed=True)
            click.echo(f"Wrote {rows} removed rows to {removed}", err=True)
        if save_recipe:
            write_text_atomic(save_recipe, sel.recipe.to_toml(), overwrite=overwrite)


def fmt_of(path: str) -> str:
    """The format of a side file from its extension (csv when unknown or for screens)."""
    fmt = _default_format(path)
    return fmt if fmt in ("csv", "tsv", "json", "ndjson", "parquet") else "csv"
