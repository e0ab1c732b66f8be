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
