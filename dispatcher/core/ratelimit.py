"""A token bucket on an injected clock: the global Workflow creation rate, and ``--rate`` of
``dead-letter replay`` (:class:`Pacer`, which waits for the bucket with work to do meanwhile)."""

from __future__ import annotations

from collections.abc import Callable

from dispatcher.core.clock import Clock

#: Longest single nap of a :class:`Pacer`, so its callback runs often enough to keep leases alive.
MAX_NAP_SECONDS = 1.0
#: Shortest nap: a wait rounded down to nothing by floating point must still move the clock.
MIN_NAP_SECONDS = 0.001


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    With several replicas each one runs a bucket with its share of the global rate
    (see :func:`share`), so the sum across replicas never exceeds the configured rate.
    """

    def __init__(self, *, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = clock()

    @property
    def rate(self) -> float:
        return self._rate

    def reconfigure(self, *, rate: float, burst: int) -> None:
        """Change the limits live; tokens already saved are capped, never added."""
        self._refill()
        self._rate, self._burst = rate, float(burst)
        self._tokens = min(self._tokens, self._burst)

    def try_acquire(self, tokens: int = 1) -> bool:
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def refund(self, tokens: int = 1) -> None:
        """Give back tokens taken for work that turned out not to be needed (never past burst)."""
        self._tokens = min(self._burst, self._tokens + tokens)

    def wait_time(self, tokens: int = 1) -> float:
        """Seconds until ``tokens`` are available (0 when they are now)."""
        self._refill()
        missing = tokens - self._tokens
        return 0.0 if missing <= 0 else missing / self._rate

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)


def share(total: float, replicas: int) -> float:
    """One replica's share of a global limit."""
    return total / max(1, replicas)


def cap_share(cap: int, replicas: int, rank: int) -> int:
    """One replica's share of a cap; the shares of ranks 0..replicas-1 add up to ``cap``."""
    base, remainder = divmod(cap, max(1, replicas))
    return base + (1 if rank < remainder else 0)


class Pacer:
    """``rate`` per second on average, bursts of at most one second's worth, for a loop that
    must keep working while it waits: a replay paced to a trickle may hold pulled dead letters
    longer than their lease, so the wait is cut into naps and ``while_waiting`` (renewing the
    leases) runs after each. The sleep is injected, so tests pace without sleeping."""

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
        """Return once one more may go, calling ``while_waiting`` after each nap."""
        while not self._bucket.try_acquire():
            wait = self._bucket.wait_time()
            self._sleep(max(MIN_NAP_SECONDS, min(MAX_NAP_SECONDS, wait)))
            while_waiting()
