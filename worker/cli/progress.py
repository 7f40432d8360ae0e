"""The one-shot ingest's progress bar: files done, rate and time left, on a terminal only.

When standard output is not a terminal (a script, a scheduled task, a pipe) nothing is drawn and
only the lines the caller prints (rejections and the summary) appear.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class IngestProgress:
    """Advances by bytes (files differ a thousandfold in size), shows files done of total."""

    def __init__(self, files: int, total_bytes: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.files = files
        self.done = 0
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if self.enabled:
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(),
                console=Console(file=sys.stdout), transient=True)
            self._task = self._bar.add_task(self._label(), total=max(total_bytes, 1))

    def _label(self) -> str:
        return f"{self.done}/{self.files} files"

    def __enter__(self) -> IngestProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, size: int) -> None:
        self.done += 1
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=size, description=self._label())

    def line(self, text: str) -> None:
        """A line that always shows (a rejection): above the bar, or plainly without one."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text)
