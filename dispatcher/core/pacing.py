"""Holding a loop to ``--rate`` messages per second, with work to do while it waits.

A replay paced to a trickle may hold pulled dead letters for longer than their lease, so the
wait is cut into short naps and a callback (renewing the leases) runs after each. The rate
itself is the dispatcher's :class:`~dispatcher.core.ratelimit.TokenBucket`; the sleep and the
clock are injected, so tests pace without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable

from dispatcher.core.clock import Clock
from dispatcher.core.ratelimit import TokenBucket

#: Longest single nap, so the callback runs often enough to keep leases alive.
MAX_NAP_SECONDS = 1.0
#: Shortest nap: a wait rounded down to nothing by floating point must still move the clock.
MIN_NAP_SECONDS = 0.001


class Pacer:
    """``rate`` per second on average; bursts of at most one second's worth."""

    def __init__(self, *, rate: float, clock: Clock, sleep: Callable[[float], None]) -> None:
        self._bucket = TokenBucket(rate=rate, burst=max(1, int(rate)), clock=clock)
        self._sleep = sleep

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def batch_size(self, largest: int) -> int:
        """How many to pull at once: about one second's worth, so little is in flight."""
        return max(1, min(largest, int(self._bucket.rate)))

    def take(self, while_waiting: Callable[[], None] = lambda: None) -> None:
        """Return once one more message may go, calling ``while_waiting`` after each nap."""
        while not self._bucket.try_acquire():
            wait = self._bucket.wait_time()
            self._sleep(max(MIN_NAP_SECONDS, min(MAX_NAP_SECONDS, wait)))
            while_waiting()
