"""Progress of long work as the reader can take it: a live bar on a terminal, plain lines elsewhere.

Why: a Rich bar redraws in place, which is noise in a CI log or a file; there a line every few
seconds says the same. Both show the count, the rate and, when the total is known, the ETA.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Protocol

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dispatcher.commands.output import console

PLAIN_EVERY_SECONDS = 5.0


class Meter(Protocol):
    def __enter__(self) -> Meter: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def update(self, completed: int) -> None: ...


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


class LiveMeter:
    """A Rich bar on stderr: count, rate, ETA; gone when the work is done."""

    def __init__(self, description: str, total: int | None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> LiveMeter:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)


class PlainMeter:
    """A line on stderr every few seconds and one at the end."""

    def __init__(self, description: str, total: int | None) -> None:
        self._description = description
        self._total = total
        self._started = time.monotonic()
        self._last_line = self._started
        self._completed = 0

    def __enter__(self) -> PlainMeter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._emit(time.monotonic())

    def update(self, completed: int) -> None:
        self._completed = completed
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY_SECONDS:
            self._emit(now)

    def _emit(self, now: float) -> None:
        self._last_line = now
        elapsed = max(now - self._started, 1e-9)
        rate = self._completed / elapsed
        of = "" if self._total is None else f"/{self._total:,}"
        line = f"{self._description}: {self._completed:,}{of} ({rate:,.0f}/s"
        if self._total is not None and rate > 0 and self._completed < self._total:
            line += f", ETA {(self._total - self._completed) / rate:,.0f} s"
        print(line + ")", file=sys.stderr, flush=True)


def meter(description: str, total: int | None) -> Meter:
    """A live bar on an interactive terminal, plain lines when piped or under CI=true."""
    interactive = sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true"
    return LiveMeter(description, total) if interactive else PlainMeter(description, total)
