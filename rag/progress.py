"""A transient rich progress bar for long work (embedding, reading files)."""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich progress bar over texts, if rich is installed; otherwise nothing."""

    def __init__(self, total: int, description: str = "Embedding") -> None:
        self._progress: Any = None
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
        except ImportError:  # pragma: no cover - rich is a dependency of the package
            return
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
