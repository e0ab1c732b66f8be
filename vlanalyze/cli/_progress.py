"""Progress bars for the CLI (rich, on stderr). Only the CLI imports rich."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from vlanalyze._fs import ProgressCallback


class Reporter:
    """Progress bars on stderr (rich), one per named step; silent when quiet."""

    def __init__(self, quiet: bool) -> None:
        self._progress: Any = None
        self._bars: dict[str, Any] = {}
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(stderr=True),
            )

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, name: str, completed: float, total: float | None, detail: str) -> None:
        """Draw bar ``name`` at ``completed`` of ``total``, with a detail text."""
        if self._progress is None:
            return
        if name not in self._bars:
            self._bars[name] = self._progress.add_task(name, total=total, detail=detail)
        self._progress.update(self._bars[name], completed=completed, total=total, detail=detail)

    def callback(self, name: str) -> ProgressCallback:
        """An ``on_progress(done, total)`` callback drawing the bar ``name``."""

        def on_progress(done: int, total: int | None) -> None:
            self.update(name, done, total, "")

        return on_progress
