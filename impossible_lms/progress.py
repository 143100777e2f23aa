"""One progress style for every long loop: rich bars on a terminal, plain lines in a log.

``progress()`` is the only constructor. On a terminal (or in Jupyter) it is a rich
``Progress`` with bars. When stderr is a file or a pipe (a slurm or nohup job), a
bar would print nothing until the end, so the same object prints one plain line
per task every ``interval`` seconds and one when the task ends::

    12:03:04 train word_hop tiny-gpt2 seed0: 120/3000 (4%) · 2.10/s · ETA 22m51s · loss 3.210 · lr 6.0e-04 · ...
    12:25:55 train word_hop tiny-gpt2 seed0: done 3000/3000 in 22m51s (2.19/s) · loss 2.950 · ...

Both share rich's task API (``add_task``, ``update``, ``advance``,
``remove_task``), so callers do not know which one they have. The interval is
``ILM_PROGRESS_EVERY`` seconds (default 20; ``ilm --progress-every``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

INTERVAL_ENV = "ILM_PROGRESS_EVERY"
DEFAULT_INTERVAL = 20.0


class _InfoColumn(TextColumn):
    """Free text per task (``progress.update(task, info="loss 3.2")``); empty when unset."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        return Text(str(task.fields.get("info", "")))


def interval_from_env() -> float:
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return max(0.0, value)


def progress(transient: bool = False, disable: bool = False, *, interval: float | None = None,
             stream: TextIO | None = None) -> Progress:
    """Bars on a terminal, :class:`LineProgress` elsewhere, nothing when ``disable``.

    ``stream`` (default: ``sys.stderr`` at the time of each line) and ``interval``
    (seconds; default from ``ILM_PROGRESS_EVERY``) only matter for the line mode.
    """
    console = Console(stderr=True)
    if not disable and (stream is not None or not (console.is_terminal or console.is_jupyter)):
        return LineProgress(interval_from_env() if interval is None else interval, stream)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        _InfoColumn(),
        console=console,
        transient=transient,
        disable=disable,
    )


class LineProgress(Progress):
    """rich's task bookkeeping without the live display: plain lines at a steady interval.

    A line per task at most every ``interval`` seconds (when it is updated), and
    one when it ends: its total is reached, it is removed, or the progress stops.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, stream: TextIO | None = None,
                 get_time: Callable[[], float] | None = None) -> None:
        super().__init__(disable=True, get_time=get_time)  # no Live display, no refresh thread
        self.interval = float(interval)
        self._stream = stream
        self._last: dict[TaskID, float] = {}
        self._start: dict[TaskID, tuple[float, float]] = {}  # when and where counting began (resumed runs)
        self._ended: set[TaskID] = set()

    # rich's API, with a line where one is due
    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0, visible: bool = True, **fields: Any) -> TaskID:
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        now = self.get_time()
        self._last[task_id] = now
        self._start[task_id] = (now, float(completed))
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._maybe_emit(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_emit(task_id)

    def remove_task(self, task_id: TaskID) -> None:
        self._end(task_id)
        super().remove_task(task_id)

    def stop(self) -> None:
        for task_id in list(self._tasks):
            self._end(task_id)
        super().stop()

    # lines
    def _maybe_emit(self, task_id: TaskID) -> None:
        with self._lock:
            task = self._tasks[task_id]
        if task.total is not None and task.completed >= task.total:
            self._end(task_id)
        elif self.get_time() - self._last.get(task_id, 0.0) >= self.interval:
            self._emit(self.describe(task_id))
            self._last[task_id] = self.get_time()

    def _end(self, task_id: TaskID) -> None:
        if task_id in self._ended or task_id not in self._tasks:
            return
        self._ended.add(task_id)
        task = self._tasks[task_id]
        if task.completed > self._start.get(task_id, (0.0, 0.0))[1] or task.total == task.completed:
            self._emit(self.describe(task_id, final=True))

    def rate(self, task_id: TaskID) -> float | None:
        """Units per second since the task was added (from where it started, for resumed runs)."""
        task = self._tasks[task_id]
        start_time, start_done = self._start.get(task_id, (task.start_time or self.get_time(), 0.0))
        elapsed = self.get_time() - start_time
        done = task.completed - start_done
        return done / elapsed if elapsed > 0 and done > 0 else None

    def describe(self, task_id: TaskID, final: bool = False) -> str:
        task: Task = self._tasks[task_id]
        rate = self.rate(task_id)
        elapsed = self.get_time() - self._start.get(task_id, (self.get_time(), 0.0))[0]
        count = _count(task.completed) + (f"/{_count(task.total)}" if task.total is not None else "")
        if final:
            short = task.total is not None and task.completed < task.total  # cut short (an error, an early stop)
            parts = [f"{task.description}: {'stopped at' if short else 'done'} {count} "
                     f"{'after' if short else 'in'} {_duration(elapsed)}" + (f" ({_rate(rate)})" if rate else "")]
        else:
            pct = f" ({100 * task.completed / task.total:.0f}%)" if task.total else ""
            parts = [f"{task.description}: {count}{pct}", _rate(rate) if rate else "starting"]
            if rate and task.total is not None:
                parts.append(f"ETA {_duration((task.total - task.completed) / rate)}")
        info = str(task.fields.get("info", "") or "")
        if info:
            parts.append(info)
        return " · ".join(parts)

    def _emit(self, text: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stream.flush()  # a log read while the job runs must be current


def _count(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _rate(per_second: float) -> str:
    if per_second >= 100:
        return f"{per_second:,.0f}/s"
    if per_second >= 1:
        return f"{per_second:.2f}/s"
    return f"{1 / per_second:.1f}s each"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
