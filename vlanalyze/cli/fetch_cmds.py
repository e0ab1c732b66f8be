"""CLI commands of the fetch job: ``fetch`` and ``stand-in`` (being written)."""

from __future__ import annotations

import click


@click.command()
def fetch() -> None:
    """Download an export from Visual Layer."""
    raise click.ClickException("not implemented yet")


@click.command(name="stand-in")
def stand_in() -> None:
    """Run a local stand-in of the export API."""
    raise click.ClickException("not implemented yet")
