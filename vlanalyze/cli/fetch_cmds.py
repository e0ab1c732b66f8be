"""CLI commands of the fetch job: ``fetch`` (pull an export) and ``stand-in`` (serve one).

Thin shells: ``fetch`` calls :func:`vlanalyze.fetch._pull.pull_export` and renders its
callbacks as progress bars on stderr; ``stand-in`` runs :class:`vlanalyze.testing.StandIn`
until Ctrl-C. Library imports happen inside the commands, to keep ``--help`` fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from vlanalyze.cli._common import handle_errors, overwrite_option
from vlanalyze.cli._progress import Reporter
from vlanalyze.errors import ExportFormatError

if TYPE_CHECKING:
    from vlanalyze.fetch._client import ExportTask


class _Reporter(Reporter):
    """Renders polls, download and extraction progress as rich progress lines on stderr."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(quiet)
        self.task_id: str | None = None
        self._step = "download"

    def poll(self, task: ExportTask) -> None:
        """Show the server's progress of the export task."""
        self.task_id = task.id
        fraction = task.fraction or 0.0
        self.update("export", 100 * fraction, 100, f"{task.status} (task {task.id})")

    def step(self, name: str) -> None:
        """A new step (``download``, ``extract``) starts: the next progress is its own."""
        self._step = name

    def progress(self, done: int, total: int | None) -> None:
        """Show the current step's progress in bytes."""
        size = human_bytes(done) + (f" / {human_bytes(total)}" if total else "")
        self.update(self._step, done, total, size)


def human_bytes(n: int) -> str:
    """A byte count for people: "512 B", "177.2 KB", "3.4 MB", "1.2 GB" (1 KB = 1000 B)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@click.command()
@click.argument("dataset_id")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create with the extracted export (must be absent or empty).",
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["json", "parquet"]),
    default="json",
    show_default=True,
    help="Metadata format of the export.",
)
@click.option("--images/--no-images", default=False, help="Also export the images (images/).")
@click.option(
    "--media-ids",
    "media_ids_file",
    type=click.File("r", encoding="utf-8"),
    help="Export only these media: a CSV with a media_id column, one id a line, or - for stdin.",
)
@click.option("--cluster", "cluster_id", help="Export only this cluster.")
@click.option(
    "--exclude-media-id", "exclude", multiple=True, help="With --cluster: leave out this media."
)
@click.option("--task-id", help="Resume an export task already started (after a timeout, Ctrl-C).")
@overwrite_option("Replace a non-empty output folder (once the new export is complete).")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="First wait between status polls, in seconds (it backs off).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="Give up waiting for the export after this many seconds.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@handle_errors
def fetch(
    dataset_id: str,
    output: Path,
    export_format: str,
    images: bool,
    media_ids_file: TextIO | None,
    cluster_id: str | None,
    exclude: tuple[str, ...],
    task_id: str | None,
    overwrite: bool,
    poll_interval: float,
    timeout: float,
    quiet: bool,
) -> None:
    """Export a Visual Layer dataset and extract it into a folder.

    Credentials come from VL_API_KEY and VL_API_SECRET (or a ready VL_TOKEN), or
    from ~/.config/vlanalyze/config.toml; set VL_BASE_URL for an on-premise install.

    \b
    Examples:
      vlanalyze fetch DATASET_ID -o exported_dataset/ --format parquet --images
      vlanalyze fetch DATASET_ID -o picked/ --media-ids selection.csv --images
      vlanalyze fetch DATASET_ID -o cl/ --cluster CLUSTER_ID --exclude-media-id ID
      vlanalyze fetch DATASET_ID -o exported_dataset/ --task-id TASK_ID
    """
    from vlanalyze.fetch._client import VisualLayerClient
    from vlanalyze.fetch._pull import pull_export
    from vlanalyze.materialize._selection import read_media_ids

    if exclude and not cluster_id:
        raise click.UsageError("--exclude-media-id needs --cluster")
    media_ids = None
    if media_ids_file is not None:
        media_ids = read_media_ids(media_ids_file, source=media_ids_file.name)
    with VisualLayerClient.from_env() as client, _Reporter(quiet) as reporter:
        try:
            pulled = pull_export(
                client,
                dataset_id,
                output,
                export_format=export_format,
                include_images=images,
                media_ids=media_ids,
                cluster_id=cluster_id,
                exclude_media_ids=exclude,
                task_id=task_id,
                overwrite=overwrite,
                poll_interval=poll_interval,
                timeout=timeout,
                on_poll=reporter.poll,
                on_progress=reporter.progress,
                on_step=reporter.step,
            )
        except KeyboardInterrupt:
            if reporter.task_id:
                click.echo(
                    f"Resume with: vlanalyze fetch {dataset_id} -o {output} "
                    f"--task-id {reporter.task_id}",
                    err=True,
                )
            raise
    for warning in pulled.warnings:
        click.echo(f"Warning: {warning}", err=True)
    media = "" if pulled.media_count is None else f" ({_media(pulled.media_count)})"
    click.echo(f"Exported dataset {dataset_id} to {pulled.path}{media}")


def _media(n: int) -> str:
    return f"{n:,} media item" if n == 1 else f"{n:,} media items"


@click.command(name="stand-in")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (0: any free one).")
@click.option("--dataset-id", help="The dataset id to answer to (default: a fixed demo id).")
@click.option("--no-auth", is_flag=True, help="Need no token, like an on-premise install.")
@click.option(
    "--polls", type=click.IntRange(0), default=2, show_default=True, help="Polls until done."
)
@handle_errors
def stand_in(
    export_dir: Path, port: int, dataset_id: str | None, no_auth: bool, polls: int
) -> None:
    """Serve EXPORT_DIR through a local stand-in of the Visual Layer export API.

    Test your own scripts offline: the stand-in answers the dataset, export, status and
    download calls of the real service, on 127.0.0.1, until Ctrl-C.

    \b
    Example:
      vlanalyze stand-in sample_data/export-json --port 8080
    """
    from vlanalyze.testing import DEMO_DATASET_ID, StandIn

    if not any((export_dir / f"metadata.{f}").is_file() for f in ("json", "parquet")):
        raise ExportFormatError(
            f"{export_dir} holds no metadata.json or metadata.parquet",
            hint="give the folder of an extracted export",
        )
    credentials: dict[str, Any] = {"api_key": None, "api_secret": None} if no_auth else {}
    try:
        server = StandIn(
            export_dir, dataset_id=dataset_id or DEMO_DATASET_ID, port=port, **credentials
        )
    except OSError as exc:
        raise click.ClickException(f"cannot listen on port {port}: {exc.strerror}") from exc
    with server:
        server.polls_to_complete = polls
        # Ctrl-C is how a server is meant to stop: exit 0, wherever it lands.
        try:
            _announce(server)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("Stopped.", err=True)


def _announce(server: Any) -> None:
    click.echo(f"Stand-in of the Visual Layer export API serving {server.export_dir}")
    click.echo(f"  export VL_BASE_URL={server.base_url}")
    if server.api_key:
        click.echo(f"  export VL_API_KEY={server.api_key} VL_API_SECRET={server.api_secret}")
        click.echo(f"  JWT for curl (valid 1 day): {server.token(lifetime=86400)}")
    click.echo(f"  dataset id: {server.dataset_id}")
    click.echo(f"  try: vlanalyze fetch {server.dataset_id} -o exported_dataset/")
    click.echo("Press Ctrl-C to stop.", err=True)
