"""CLI command of the materialize job: ``materialize`` (a selection into files).

A thin shell over :func:`vlanalyze.plan_materialize` and :func:`vlanalyze.materialize`,
with a progress bar on stderr. ``--fetch-missing`` lives here, not in the library:
materialize must not depend on fetch, so the CLI pulls the missing media through the
public fetch API (:func:`vlanalyze.pull_export`) and plans again with them.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vlanalyze.cli._common import handle_errors
from vlanalyze.cli._progress import Reporter
from vlanalyze.cli.query_cmds import export_options, open_for_cli
from vlanalyze.errors import MaterializeError

if TYPE_CHECKING:
    from vlanalyze.fetch._client import VisualLayerClient
    from vlanalyze.fetch._pull import PulledExport
    from vlanalyze.materialize._apply import MaterializeResult
    from vlanalyze.materialize._plan import Plan

# The same as vlanalyze.materialize's LAYOUTS and MODES (a test checks), kept here so that
# --help does not import polars.
LAYOUTS = ("flat", "by-label", "imagefolder", "hf", "yolo", "coco", "csv")
MODES = ("copy", "hardlink", "symlink", "reflink")


@click.command()
@export_options
@click.argument("selection")
# Not click.Path(file_okay=False): an existing file is a data error (exit 1), which the
# library words, naming the file in the way, not a usage error (exit 2).
@click.option("-o", "--output", required=True, type=click.Path(), help="Output folder.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="flat", show_default=True)
@click.option("--mode", type=click.Choice(MODES), default="copy", show_default=True)
@click.option(
    "--name",
    "name",
    metavar="TEMPLATE",
    help="File names from {media_id} {file_name} {stem} {ext} {file_path} {label} {split} "
    "(default: {stem}__<media_id[:8]>{ext}).",
)
@click.option(
    "--images-root",
    metavar="ROOT",
    help="Folder or s3://, gs:// URL the items' file_paths are under.",
)
@click.option("--absolute-links", is_flag=True, help="Symlinks hold absolute paths.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan's summary, every conflict and missing image; write or fetch nothing.",
)
@click.option("--prune", is_flag=True, help="Remove files an earlier run wrote that left.")
@click.option("--verify", is_flag=True, help="Compare content, not only size and mtime.")
@click.option(
    "--fetch-missing",
    "fetch_dataset",
    metavar="DATASET_ID",
    help="Export the images the export lacks from Visual Layer, then go on.",
)
@click.option(
    "--fetch-timeout",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --fetch-missing waits for Visual Layer's export.",
)
@click.option(
    "--save-plan",
    type=click.Path(dir_okay=False),
    help="Also write the plan as a Parquet table (for a distributed engine).",
)
@handle_errors
def materialize(
    export: str,
    cache_dir: str | None,
    refresh: bool,
    quiet: bool,
    selection: str,
    output: str,
    layout: str,
    mode: str,
    name: str | None,
    images_root: str | None,
    absolute_links: bool,
    dry_run: bool,
    prune: bool,
    verify: bool,
    fetch_dataset: str | None,
    fetch_timeout: float,
    save_plan: str | None,
) -> None:
    """Write the images of SELECTION into a folder, a training layout or a manifest.

    SELECTION is a CSV, Parquet or NDJSON file with a media_id column (label and
    split columns are used when present), or - for standard input. Nothing is ever
    overwritten that vlanalyze did not write; a second run writes only what changed.

    \b
    Examples:
      vlanalyze sql exported_dataset/ "SELECT media_id FROM media LIMIT 100" -o sel.csv
      vlanalyze materialize exported_dataset/ sel.csv -o picked/
      vlanalyze materialize exported_dataset/ sel.csv -o yolo/ --layout yolo --mode hardlink
      vlanalyze materialize meta.parquet sel.csv -o out/ --images-root s3://bucket/data
      vlanalyze select EXPORT --top 1000 -o - | vlanalyze materialize EXPORT - -o curated/
    """
    from vlanalyze.materialize._apply import materialize as apply_plan
    from vlanalyze.materialize._plan import plan_materialize
    from vlanalyze.materialize._selection import read_selection

    if absolute_links and mode != "symlink":
        raise click.UsageError("--absolute-links is for --mode symlink")
    if not output.strip():
        raise click.UsageError("--output is empty: name the output folder (an unset variable?)")
    sel = read_selection(selection)
    options: dict[str, Any] = {
        "layout": layout,
        "mode": mode,
        "name": name,
        "images_root": images_root,
        "absolute_links": absolute_links,
    }
    with open_for_cli(export, cache_dir, refresh, quiet) as ex:
        plan = plan_materialize(ex, sel, output, **options)
        to_fetch = 0  # missing images a real run would fetch (dry run only)
        if plan.missing and fetch_dataset and layout != "csv":
            fetching = _Fetching(fetch_dataset, dry_run, quiet, fetch_timeout)
            plan, to_fetch = _with_fetched(plan, fetching, lambda extra: plan_materialize(
                ex, sel, output, extra_sources=extra, **options))  # fmt: skip
        if save_plan:
            _check_save_plan(Path(save_plan), plan.out)
            if not dry_run:  # (a run that stops writes nothing, the plan neither)
                _check(plan, dry_run)
            plan.write_parquet(save_plan)
        if dry_run:
            click.echo(_describe(plan, to_fetch, save_plan))
            for note in plan.notes:
                click.echo(f"Note: {note}", err=True)
            if plan.conflicts or not to_fetch:
                _check(plan, dry_run)
            return
        _check(plan, dry_run)
        with Reporter(quiet or not sys.stderr.isatty()) as reporter:
            result = apply_plan(
                plan, on_progress=reporter.callback("Writing files"), prune=prune, verify=verify
            )
    _report(result, plan, layout, mode)


def _report(result: MaterializeResult, plan: Plan, layout: str, mode: str) -> None:
    """The notes on stderr, then the line a run ends with."""
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    if result.left:
        click.echo(
            f"Note: {result.left} files from an earlier run are no longer selected; "
            "--prune removes them",
            err=True,
        )
    click.echo(_done(result, plan, layout, mode))


def _check_save_plan(path: Path, out: Path) -> None:
    """Refuse a --save-plan file that exists, or that is inside OUT (where a run would
    take it for someone's file in the way, or write over it)."""
    if os.path.lexists(path):
        raise MaterializeError(f"{path} already exists", hint="name another file for --save-plan")
    if out in path.expanduser().absolute().parents:
        raise MaterializeError(
            f"--save-plan {path} is inside the output folder {out}",
            hint="save the plan outside it",
        )


def _check(plan: Plan, dry_run: bool) -> None:
    """Refuse a plan with conflicts or missing images (the error names the first few)."""
    plan.check(see_all="they are listed above" if dry_run else "--dry-run lists them all")


def _done(result: MaterializeResult, plan: Plan, layout: str, mode: str) -> str:
    """The line a run ends with: what it wrote."""
    if result.nothing_to_do:
        return f"Nothing to do: {plan.table.height} items up to date in {result.out}"
    where = f"in {result.out} ({layout}, {mode})"
    if not (result.written or result.side_files_written or result.pruned):
        # Only the manifest or the record changed (a csv layout, a smaller selection...).
        what = f"manifest.csv ({plan.table.height} items)" if result.manifest_written else ""
        if layout == "csv":
            return f"Wrote {what or 'the record'} in {result.out} (csv)"
        done = f"Wrote {what}" if what else "Updated the record"
        return f"{done}, {result.skipped} images up to date {where}"
    if mode in ("hardlink", "symlink"):  # links write no bytes (nor know the sizes)
        parts = [f"linked {result.written} images"]
    else:
        parts = [f"wrote {result.written} images ({_size(result.bytes_written)})"]
    parts.append(f"{result.skipped} up to date")
    if result.side_files_written:
        parts.append(f"{result.side_files_written} layout files")
    if result.pruned:
        parts.append(f"pruned {result.pruned}")
    text = ", ".join(parts)
    return f"{text[0].upper()}{text[1:]} {where}"


def _describe(plan: Plan, to_fetch: int, save_plan: str | None) -> str:
    """The dry run's report: the summary, then every conflict and missing image."""
    s = plan.summary()
    side = len(plan.side_files)
    size = "" if plan.mode in ("hardlink", "symlink") else f" ({_size(s['bytes_to_write'])})"
    fetch = " (--fetch-missing would fetch them)" if to_fetch else ""
    lines = [
        f"Plan for {plan.out} (layout {plan.layout}, mode {plan.mode}): {s['items']} items",
        f"  write:     {s['write']} images{size}",
        f"  skip:      {s['skip']} up to date",
        f"  layout:    {s['side_files_to_write']} of {side} files to write",
        f"  conflicts: {s['conflict']}",
        f"  missing:   {s['missing']}{fetch}",
        f"  stale:     {s['stale']} (removed only with --prune)",
    ]
    conflicts = plan.conflicts
    if conflicts:
        lines.append(
            "Conflicts (files vlanalyze did not write, or that changed since, in the way):"
        )
        lines += [f"  {path}" for path in conflicts]
    missing = plan.missing if plan.layout != "csv" else []
    if missing:
        found = "a real run would fetch" if to_fetch else "whose image was found nowhere"
        lines.append(f"Missing (media ids {found}):")
        lines += [f"  {media_id}" for media_id in missing]
    done = "Dry run: nothing was written" + (" or fetched" if to_fetch else "")
    lines.append(done + (f" but the plan ({save_plan})." if save_plan else "."))
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


@dataclass(frozen=True)
class _Fetching:
    """How --fetch-missing runs."""

    dataset_id: str
    dry_run: bool
    quiet: bool
    timeout: float


def _with_fetched(
    plan: Plan, fetching: _Fetching, replan: Callable[[list[Path]], Plan]
) -> tuple[Plan, int]:
    """The plan with the images earlier runs fetched beside OUT, and those still missing
    fetched now (``replan``: the plan with these extra exports); and how many images a
    dry run would fetch."""
    earlier = sorted(
        folder
        for folder in plan.out.parent.glob(f"{glob.escape(plan.out.name)}-fetched-*")
        if _fetched_before(folder)
    )
    if earlier:
        plan = replan(earlier)
        if not plan.missing:
            where = ", ".join(str(f) for f in earlier)
            click.echo(f"Using images fetched earlier in {where}", err=True)
            return plan, 0
    if plan.conflicts and not fetching.dry_run:  # a run that will fail downloads nothing
        _check(plan, fetching.dry_run)
    folder = _fetch_folder(plan.missing, plan.out)
    if folder not in earlier:
        if fetching.dry_run:
            return plan, len(plan.missing)
        _fetch_missing(fetching, plan.missing, folder)
        plan = replan([*earlier, folder])
    _check_fetched(plan, fetching.dataset_id, folder)
    return plan, 0


def _fetch_folder(media_ids: list[str], output: Path) -> Path:
    """Where ``--fetch-missing`` puts ``media_ids``: a folder beside OUT, named by them."""
    digest = hashlib.sha256("\n".join(sorted(media_ids)).encode()).hexdigest()[:12]
    out = output.expanduser().absolute()
    return out.parent / f"{out.name}-fetched-{digest}"


def _fetched_before(folder: Path) -> bool:
    return (folder / "metadata.json").is_file() or (folder / "metadata.parquet").is_file()


def _fetch_missing(fetching: _Fetching, media_ids: list[str], folder: Path) -> None:
    """Pull exactly ``media_ids`` (with images) into ``folder``, resuming the download a
    run stopped midway left beside it; a task the server no longer has (expired, or
    ended FAILED) is dropped with its partial download, and a new export started."""
    import vlanalyze as vla
    from vlanalyze.errors import APIError, ExportFailedError

    task_id = _interrupted_task(folder)
    doing = "Resuming the fetch of" if task_id else "Fetching"
    click.echo(f"{doing} {len(media_ids)} missing images into {folder}", err=True)
    dataset_id, timeout = fetching.dataset_id, fetching.timeout
    with vla.VisualLayerClient.from_env() as client, Reporter(fetching.quiet) as reporter:
        try:
            pulled = _pull(client, reporter, dataset_id, media_ids, folder, task_id, timeout)
        except APIError as exc:
            gone = isinstance(exc, ExportFailedError) or exc.status_code in (404, 410)
            if task_id is None or not gone:
                raise
            folder.parent.joinpath(f".{folder.name}.{task_id}.zip.part").unlink(missing_ok=True)
            click.echo(f"Note: {exc.message}; starting a new export", err=True)
            pulled = _pull(client, reporter, dataset_id, media_ids, folder, None, timeout)
    for warning in pulled.warnings:
        click.echo(f"Note: {warning}", err=True)


def _pull(
    client: VisualLayerClient,
    reporter: Reporter,
    dataset_id: str,
    media_ids: list[str],
    folder: Path,
    task_id: str | None,
    timeout: float,
) -> PulledExport:
    """``pull_export`` of the images, its errors worded for materialize (no --task-id)."""
    import vlanalyze as vla
    from vlanalyze.errors import DownloadError, ExportTimeoutError

    try:
        return vla.pull_export(
            client,
            dataset_id,
            folder,
            include_images=True,
            media_ids=media_ids,
            task_id=task_id,
            timeout=timeout,
            on_progress=reporter.callback("Downloading"),
        )
    except DownloadError as exc:
        raise DownloadError(
            exc.message, hint="run the same command again: it resumes this download"
        ) from None
    except ExportTimeoutError as exc:
        raise ExportTimeoutError(
            exc.message,
            task_id=exc.task_id,
            hint="run the same command again later (it starts a new export), or give "
            "--fetch-timeout more seconds",
        ) from None


def _interrupted_task(folder: Path) -> str | None:
    """The export task whose download into ``folder`` broke off (its ``.part`` file
    beside the folder), the latest if several; None if there is none."""
    prefix, suffix = f".{folder.name}.", ".zip.part"
    parts = [p for p in folder.parent.glob(f"{glob.escape(prefix)}*{suffix}") if p.is_file()]
    if not parts:
        return None
    latest = max(parts, key=lambda p: p.stat().st_mtime)
    return latest.name[len(prefix) : -len(suffix)] or None


def _check_fetched(plan: Plan, dataset_id: str, folder: Path) -> None:
    """Refuse a plan still missing images after the fetch: Visual Layer's export of the
    dataset does not hold them either."""
    missing = plan.missing
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise MaterializeError(
            f"{len(missing)} selected image(s) are not in Visual Layer's export of dataset "
            f"{dataset_id} either (fetched into {folder}): {shown}; nothing was written",
            hint=f"leave them out of the selection, or remove {folder} to fetch again",
        )
