"""Shared pieces of the CLI: error translation and output helpers.

Only the CLI imports click and rich; the library reports through return values,
exceptions and callbacks.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from vlanalyze.errors import VLAnalyzeError

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

#: How the CLI spells the library arguments an error's hint may name (``Fix.argument``).
FLAGS = {
    "overwrite": "--overwrite",
    "cache_dir": "--cache-dir",
    "refresh": "--refresh",
    "task_id": "--task-id",
    "mode": "--mode",
}


def _or_overwrite(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.params["overwrite"] = bool(ctx.params.get("overwrite")) or value


def overwrite_option(help: str) -> Callable[[F], F]:
    """``--overwrite`` (passed as ``overwrite``), with ``--force`` as a hidden alias."""

    def decorate(func: F) -> F:
        # Both only set ctx.params["overwrite"]: click processes them in any order.
        func = click.option(
            "--force", is_flag=True, hidden=True, expose_value=False, callback=_or_overwrite
        )(func)
        return click.option(
            "--overwrite", is_flag=True, help=help, expose_value=False, callback=_or_overwrite
        )(func)

    return decorate


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`VLAnalyzeError` into one ``Error: ...`` line on stderr and exit 1.

    A hint that names a library argument (``pass overwrite=True``) names the CLI's flag
    instead (``pass --overwrite``), from :data:`FLAGS`.

    Ctrl-C exits 130 with a short line instead of a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except VLAnalyzeError as exc:
            raise click.ClickException(exc.describe(FLAGS)) from exc
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise SystemExit(130) from None
        except OSError as exc:
            if not _is_broken_pipe(exc):
                raise
            # The reader went away (`vlanalyze sql ... | head`): stop quietly, as
            # shell tools do, and keep Python from complaining at exit.
            _silence_stdout()
            raise SystemExit(141) from None

    return wrapper


def _is_broken_pipe(exc: OSError) -> bool:
    return (
        isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE or ("Broken pipe" in str(exc))
    )


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (a test runner's capture): nothing to silence
