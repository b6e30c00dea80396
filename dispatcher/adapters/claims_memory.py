"""The in-memory twin of the claims objects, for unit tests and the whole-loop model.

Each replica writes only its own claims (one object per replica in the real adapter); a
:class:`MemoryClaimStore` stands for the API server that all of them read with a strongly
consistent list. Writing and reading happen in one call here; the model gets the
interleavings that matter by running replicas' creates in any order, and a store that
refuses (``failures``) stands for an API server that cannot be reached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from dispatcher.core import claims as claim_rules
from dispatcher.errors import TransientError


class MemoryClaimStore:
    """Every replica's claims, as the API server holds them: identity -> digest -> expiry."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[bytes, int]] = {}
        self.failures = 0
        self.writes = 0
        self.lists = 0


class MemoryClaims:
    """A :class:`~dispatcher.core.ports.Claims` over a shared :class:`MemoryClaimStore`."""

    def __init__(
        self,
        *,
        store: MemoryClaimStore,
        identity: str,
        hold_seconds: float = claim_rules.DEFAULT_HOLD_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.identity = identity
        self._clock = clock
        self._book = claim_rules.ClaimBook(hold_seconds)
        self._lock = threading.Lock()

    def claim(self, order_ids: Sequence[str], *, renew: bool) -> frozenset[str]:
        with self._lock:
            if self.store.failures:
                self.store.failures -= 1
                raise TransientError("claims store unavailable")
            now = self._clock()
            mine = claim_rules.digests_of(order_ids)
            self._book.add(mine, now=now)
            self._write()
            if renew:
                return frozenset()
            self.store.lists += 1
            others = [e for who, e in self.store.objects.items() if who != self.identity]
            contested = claim_rules.contested(mine, others, now=now)
            if contested:
                self._book.withdraw(d for d, o in mine.items() if o in contested)
                self._write()
            return contested

    def _write(self) -> None:
        self.store.writes += 1
        self.store.objects[self.identity] = claim_rules.unpack(self._book.blob())
