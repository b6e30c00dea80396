"""Per-order claims: how two replicas that each hold a copy of one order agree on who creates it.

The check "is this order in a Workflow already?" answers from each replica's watch and ledger,
which lag the API server by a little. Two replicas holding copies of one order (a Pub/Sub
duplicate or redelivery, a re-parked copy, an upstream publish retry) can both pass that check
within the lag and both create. A claim closes the gap: before its first POST a replica writes
the orders' digests into its own claims object, then reads every other replica's claims
object with a strongly consistent list. Of two replicas that both write and then read, at
least one sees the other's claim; whoever sees a claim on an order of its batch withdraws its
own and leaves that order to the other (and acks it once the other's Workflow shows up). Both
may withdraw; then both try again after a pause that differs between replicas.

A claim is kept ``hold_seconds`` after it was written (renewed with every retry of the same
create), long enough for the Workflow to land and every watch to report it; after that the
ordinary check covers the order. The arithmetic lives here so the Kubernetes adapter and the
in-memory twin store exactly the same thing: 12-byte digests with a 4-byte expiry each.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

from dispatcher.core import dedupe

ENTRY = struct.Struct(">12sI")
ENTRY_BYTES = ENTRY.size
DEFAULT_HOLD_SECONDS = 30.0


def pack(entries: Mapping[bytes, int]) -> bytes:
    return b"".join(ENTRY.pack(d, until) for d, until in entries.items())


def unpack(blob: bytes) -> dict[bytes, int]:
    """Digest -> expiry (epoch seconds); a torn tail is ignored."""
    usable = len(blob) - len(blob) % ENTRY_BYTES
    return dict(ENTRY.iter_unpack(blob[:usable]))


class ClaimBook:
    """One replica's claims, as it will write them: add, withdraw, drop the expired."""

    def __init__(self, hold_seconds: float = DEFAULT_HOLD_SECONDS) -> None:
        self.hold_seconds = hold_seconds
        self._entries: dict[bytes, int] = {}

    def add(self, digests: Iterable[bytes], *, now: float) -> None:
        until = int(now + self.hold_seconds) + 1
        for value in digests:
            self._entries[value] = until
        self.prune(now)

    def withdraw(self, digests: Iterable[bytes]) -> None:
        for value in digests:
            self._entries.pop(value, None)

    def prune(self, now: float) -> None:
        self._entries = {d: u for d, u in self._entries.items() if u > now}

    def blob(self) -> bytes:
        return pack(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def digests_of(order_ids: Iterable[str]) -> dict[bytes, str]:
    return {dedupe.digest(order_id): order_id for order_id in order_ids}


def contested(
    mine: Mapping[bytes, str], others: Iterable[Mapping[bytes, int]], *, now: float
) -> frozenset[str]:
    """Orders of ``mine`` that an unexpired claim of another replica also names."""
    found: set[str] = set()
    for entries in others:
        for value, order_id in mine.items():
            until = entries.get(value)
            if until is not None and until > now:
                found.add(order_id)
    return frozenset(found)


def pause_seconds(identity: str, order_id: str, attempt: int) -> float:
    """How long a withdrawn order waits before it is batched again: 1–4 s, growing with each
    withdrawal, and different for two replicas, so two that both withdrew do not meet again."""
    spread = zlib.crc32(f"{identity}\x00{order_id}\x00{attempt}".encode()) % 1000 / 1000
    return float(min(30.0, (1.0 + 3.0 * spread) * 2 ** min(attempt, 4)))
