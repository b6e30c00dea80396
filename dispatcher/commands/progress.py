"""Progress of long operator commands: a live bar on a terminal, plain lines everywhere else.

A replay of 100,000 dead letters runs for minutes, and the operator wants to see that it moves
and how fast. A terminal gets a Rich bar with counts and rate; a pipe, a log file or CI
(``CI=true``) gets one plain line on stderr every few seconds, which a log keeps readably where
a redrawn bar would leave escape codes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from dispatcher.commands.output import console

PLAIN_EVERY_SECONDS = 5.0


def live_terminal() -> bool:
    """True when stderr is a terminal a person watches (not CI, not a pipe)."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


class Meter:
    """``done`` of ``total`` (unknown when None), ``looked_at`` messages and the rate of done."""

    def __init__(
        self,
        description: str,
        *,
        total: int | None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float = PLAIN_EVERY_SECONDS,
        screen: Console | None = None,
    ) -> None:
        self._description = description
        self._total = total
        self._clock = clock
        self._every = every
        self._started = clock()
        self._printed_at = self._started
        self.done = 0
        self.looked_at = 0
        self._bar: Progress | None = None
        if live if live is not None else live_terminal():
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[looked]:,} looked at  {task.fields[rate]:,.0f}/s"),
                console=screen or console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task(description, total=total, looked=0, rate=0.0)

    def __enter__(self) -> Meter:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.looked_at:
            self._line()

    @property
    def seconds(self) -> float:
        return self._clock() - self._started

    @property
    def rate(self) -> float:
        """Messages done per second so far."""
        elapsed = self.seconds
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, *, done: int, looked_at: int) -> None:
        self.done, self.looked_at = done, looked_at
        if self._bar is not None:
            self._bar.update(self._task, completed=done, looked=looked_at, rate=self.rate)
        elif self._clock() - self._printed_at >= self._every:
            self._line()

    def _line(self) -> None:
        self._printed_at = self._clock()
        of = f" of {self._total:,}" if self._total is not None else ""
        sys.stderr.write(
            f"{self._description}: {self.done:,}{of} done, {self.looked_at:,} looked at, "
            f"{self.rate:,.0f}/s, {self.seconds:,.0f}s\n"
        )
        sys.stderr.flush()
