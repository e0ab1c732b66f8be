"""CLI commands of the query job: ``info``, ``sql``, ``convert`` (being written)."""

from __future__ import annotations

import click


@click.command()
def info() -> None:
    """Summarize an export."""


@click.command()
def sql() -> None:
    """Run SQL over an export."""


@click.command()
def convert() -> None:
    """Write the tidy tables as Parquet."""
