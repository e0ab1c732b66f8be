"""Shared pieces of the CLI: error translation and output helpers.

Only the CLI imports click and rich; the library reports through return values,
exceptions and callbacks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from vlanalyze.errors import VLAnalyzeError

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`VLAnalyzeError` into one ``Error: ...`` line on stderr and exit 1.

    Ctrl-C exits 130 with a short line instead of a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except VLAnalyzeError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise SystemExit(130) from None

    return wrapper
