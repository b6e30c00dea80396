"""When a pass over the dead-letter subscription takes a message, and when it stops.

A replay after an outage streams through any number of dead letters, so it cannot keep what it
looked at, and it must stop for a reason an operator can read: the subscription stayed empty
for ``idle_timeout`` seconds, ``--limit`` messages were chosen, or the optional ``--max-scan``
cap was reached. Counting and stopping are plain data on an injected clock, so they are pinned
by unit tests; pulling, leasing and publishing stay in the commands and adapters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from dispatcher.core.clock import Clock
from dispatcher.core.replay import DeadLetterRecord, Selection, ranked


@dataclass
class Sweep:
    """Counts of one pass and the reason it ended (``stopped`` stays None while it runs)."""

    selection: Selection
    clock: Clock
    idle_timeout: float
    limit: int | None = None
    max_scan: int | None = None
    looked_at: int = 0
    chosen: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None
    _last_fresh: float | None = None

    def __post_init__(self) -> None:
        self._last_fresh = self.clock()

    def next_pull(self, batch: int) -> int:
        """How many messages to ask for next (never past ``max_scan``)."""
        if self.max_scan is None:
            return batch
        return max(0, min(batch, self.max_scan - self.looked_at))

    def idle_left(self) -> float:
        """Seconds of quiet left before the pass ends for want of messages."""
        since = self.clock() - (self._last_fresh or 0.0)
        return max(0.0, self.idle_timeout - since)

    def take(self, records: Iterable[DeadLetterRecord]) -> list[DeadLetterRecord]:
        """Count freshly pulled messages; the ones selected (``--limit`` not yet reached)."""
        chosen: list[DeadLetterRecord] = []
        for record in records:
            self.looked_at += 1
            self.reasons[record.reason] += 1
            self._last_fresh = self.clock()
            room = self.limit is None or self.chosen < self.limit
            if room and self.selection.matches(record):
                chosen.append(record)
                self.chosen += 1
        return chosen

    def should_stop(self) -> bool:
        """True (and ``stopped`` set) once a stop condition holds."""
        if self.stopped is not None:
            return True
        if self.limit is not None and self.chosen >= self.limit:
            self.stopped = f"--limit {self.limit} reached"
        elif self.max_scan is not None and self.looked_at >= self.max_scan:
            self.stopped = f"--max-scan {self.max_scan} reached"
        elif self.idle_left() <= 0:
            self.stopped = f"no new dead letter for {self.idle_timeout:g}s"
        return self.stopped is not None

    def stop(self, reason: str) -> None:
        """End the pass for a reason of the caller's (a failed publish, an interrupt)."""
        if self.stopped is None:
            self.stopped = reason

    @property
    def passed_over(self) -> int:
        return self.looked_at - self.chosen

    def reason_counts(self) -> list[tuple[str, int]]:
        """Messages looked at per reason, most frequent first (ties by name)."""
        return ranked(self.reasons)
