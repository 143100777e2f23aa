"""One progress-bar style for every long loop."""

from __future__ import annotations

from rich.text import Text
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _InfoColumn(TextColumn):
    """Free text per task (``progress.update(task, info="loss 3.2")``); empty when unset."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        return Text(str(task.fields.get("info", "")))


def progress(transient: bool = False, disable: bool = False) -> Progress:
    """A rich Progress with description, bar, count, elapsed and ETA columns."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        _InfoColumn(),
        transient=transient,
        disable=disable,
    )
