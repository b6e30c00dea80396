"""The in-memory twin of the dedupe ledger, for unit tests and the whole-loop model.

It has the real ledger's interface and promises, made synchronous: ``record`` calls
``on_done`` before it returns. What survives a restart is modelled explicitly: a
:class:`MemoryLedgerStore` is the durable side that several ledgers (replicas, or one replica
before and after a restart) share, while ids whose write failed live only in the process
that recorded them until a later write succeeds, exactly as in :class:`KubeLedger`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from dispatcher.core import dedupe
from dispatcher.errors import TransientError

Callback = Callable[[BaseException | None], None]


class MemoryLedgerStore:
    """The durable side: digest → when it was last recorded. Shared by replicas' twins."""

    def __init__(self) -> None:
        self.recorded: dict[bytes, float] = {}
        self.writes = 0


class MemoryLedger:
    """An :class:`~dispatcher.core.ports.OrderLedger` in memory.

    An id is contained for exactly ``window_seconds`` after it was recorded (the real ledger
    keeps it up to one hour bucket longer; the twin holds to the promise, not the slack).
    """

    def __init__(
        self,
        *,
        store: MemoryLedgerStore | None = None,
        window_seconds: float = dedupe.DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store if store is not None else MemoryLedgerStore()
        self.window = window_seconds
        self._clock = clock
        self._local: dict[bytes, float] = {}
        self._pending: dict[bytes, float] = {}
        self._failures: list[BaseException] = []
        self._started = False
        self._lock = threading.Lock()
        self._last_expiry = float("-inf")

    def start(self, timeout: float = 30.0) -> None:
        self._started = True

    def stop(self) -> None:
        self._started = False

    def synced(self) -> bool:
        return self._started

    def fail_next(self, count: int = 1, error: BaseException | None = None) -> None:
        """Make the next ``count`` records fail (their ids stay local until a write succeeds)."""
        with self._lock:
            for _ in range(count):
                self._failures.append(error or TransientError("injected ledger write failure"))

    def contains(self, order_id: str) -> bool:
        value = dedupe.digest(order_id)
        cutoff = self._clock() - self.window
        with self._lock:
            for source in (self._local, self.store.recorded):
                seen = source.get(value)
                if seen is not None and seen > cutoff:
                    return True
        return False

    def durable(self, order_id: str) -> bool:
        """Whether a restarted or another replica would see ``order_id`` (tests' view)."""
        seen = self.store.recorded.get(dedupe.digest(order_id))
        return seen is not None and seen > self._clock() - self.window

    def pending(self) -> int:
        """Ids recorded here whose write failed and is still to be retried."""
        return len(self._pending)

    def record(self, order_ids: Sequence[str], on_done: Callback) -> None:
        now = self._clock()
        with self._lock:
            for order_id in order_ids:
                value = dedupe.digest(order_id)
                self._local[value] = now
                self._pending[value] = now
            error = self._failures.pop(0) if self._failures else None
            if error is None:
                self.store.recorded.update(self._pending)
                self.store.writes += 1
                self._pending.clear()
            self._expire(now)
        on_done(error)

    def _expire(self, now: float) -> None:
        # Forgetting is only about memory; contains() checks the time itself.
        if now - self._last_expiry < self.window / 100:
            return
        self._last_expiry = now
        cutoff = now - self.window
        for source in (self._local, self.store.recorded):
            for value in [value for value, seen in source.items() if seen <= cutoff]:
                del source[value]
