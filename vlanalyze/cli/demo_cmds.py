"""CLI command ``demo``: the whole loop offline (a thin shell over ``vla.run_demo``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from vlanalyze.cli._common import handle_errors

if TYPE_CHECKING:
    from vlanalyze.demo._demo import DemoStep


def _show(step: DemoStep) -> None:
    click.echo(f"\n# {step.title}")
    click.echo(f"$ {step.command}")
    if step.detail:
        click.echo(f"  {step.detail}")
    if step.look is not None:
        click.echo(f"  -> look at {step.look}")


@click.command()
@click.argument("dir", required=False, type=click.Path(file_okay=False))
@handle_errors
def demo(dir: str | None) -> None:
    """Run the whole loop offline on the bundled sample: a local stand-in of the
    Visual Layer API -> fetch -> select (dedupe, top-N, split) -> materialize
    (ImageFolder) -> report, into DIR (absent or empty; default: a new temporary
    folder). Prints each step's command, to re-run by hand, and where to look.

    \b
    Examples:
      vlanalyze demo
      vlanalyze demo vla-demo/ && open vla-demo/report.html
    """
    from vlanalyze.demo._demo import run_demo

    result = run_demo(dir, on_step=_show)
    click.echo(f"\nDone: everything is in {result.folder}")
    click.echo(f"Open the report: {result.report.as_uri()}")
