"""Progress of long operator commands: a live bar on a terminal, plain lines everywhere else.

A replay of 100,000 dead letters or a publish of a million orders runs for minutes, and the
operator wants to see that it moves, how fast, and (when the total is known) how long is left.
A terminal gets a Rich bar with counts, rate and ETA; a pipe, a log file or CI (``CI=true``)
gets one plain line on stderr every few seconds and one at the end, which a log keeps readably
where a redrawn bar would leave escape codes. ``looked_at`` is for commands that look at more
messages than they act on (replay's filters); without it the line shows only what was done.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from dispatcher.commands.output import console

PLAIN_EVERY_SECONDS = 5.0


def live_terminal() -> bool:
    """True when stderr is a terminal a person watches (not CI, not a pipe)."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


class Meter:
    """``done`` of ``total`` (unknown when None), ``looked_at`` messages, the rate and the ETA."""

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
        self.looked_at: int | None = None
        self._bar: Progress | None = None
        if live if live is not None else live_terminal():
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[looked]}{task.fields[rate]:,.0f}/s"),
                TimeRemainingColumn(),
                console=screen or console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task(description, total=total, looked="", rate=0.0)

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
        elif self.done or self.looked_at:
            self._line()

    @property
    def seconds(self) -> float:
        return self._clock() - self._started

    @property
    def rate(self) -> float:
        """Messages done per second so far."""
        elapsed = self.seconds
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, *, done: int, looked_at: int | None = None) -> None:
        self.done, self.looked_at = done, looked_at
        if self._bar is not None:
            looked = "" if looked_at is None else f"{looked_at:,} looked at  "
            self._bar.update(self._task, completed=done, looked=looked, rate=self.rate)
        elif self._clock() - self._printed_at >= self._every:
            self._line()

    def _line(self) -> None:
        self._printed_at = self._clock()
        of = f" of {self._total:,}" if self._total is not None else ""
        looked = "" if self.looked_at is None else f", {self.looked_at:,} looked at"
        rate = self.rate
        eta = ""
        if self._total is not None and rate > 0 and self.done < self._total:
            eta = f", ETA {(self._total - self.done) / rate:,.0f}s"
        sys.stderr.write(
            f"{self._description}: {self.done:,}{of} done{looked}, {rate:,.0f}/s, "
            f"{self.seconds:,.0f}s{eta}\n"
        )
        sys.stderr.flush()
