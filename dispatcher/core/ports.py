"""What the core needs from the world outside, as protocols the adapters and twins satisfy.

The engine asks these questions many times per order, so every answer comes from memory the
adapters keep current in the background (a Workflow watch, Lease renewals, the dedupe
ledger); none of them may block or call an API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol


class ClusterState(Protocol):
    """Workflows that exist, as the dispatcher's watch (and dedupe ledger) sees them."""

    def contains(self, order_id: str) -> bool:
        """The order is inside a Workflow, or was within the dedupe window."""
        ...

    def live_by_replica(self, size_class: str) -> Mapping[str, int]:
        """Live (pending or running) Workflows of a class, by the replica label that made them."""
        ...

    def objects_total(self) -> int:
        """The dispatcher's Workflow objects in the namespace, finished ones included."""
        ...

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None:
        """This process created ``name``: count it before the watch reports it."""
        ...


class Members(Protocol):
    """The live replicas (one Lease each) and whether this one may use its share yet."""

    def members(self) -> Sequence[str]:
        """Identities of the live replicas, sorted (this replica included)."""
        ...

    def settled(self) -> bool:
        """Every peer has had time to see this replica: shares are agreed."""
        ...


class OrderLedger(Protocol):
    """Order ids that became Workflows, remembered for the dedupe window across restarts.

    ``contains`` answers from memory and never blocks on I/O. ``record`` never blocks either:
    the ids are contained at once (locally), and ``on_done`` is called exactly once per call,
    with ``None`` when the ids are durable (a restarted or other replica will see them) or
    with the error (a :class:`dispatcher.errors.DispatchError`) when they could not be made
    durable within the adapter's retry policy. Ids whose write failed stay contained locally
    and are written again with the next batch, but ``on_done`` is not called a second time.
    """

    def contains(self, order_id: str) -> bool: ...

    def record(
        self, order_ids: Sequence[str], on_done: Callable[[BaseException | None], None]
    ) -> None: ...


class Claims(Protocol):
    """This replica's claims on orders it is about to create (``core/claims.py``).

    Called from the executor's workers, never from the engine: it performs I/O.
    """

    def claim(self, order_ids: Sequence[str], *, renew: bool) -> frozenset[str]:
        """Claim ``order_ids``; return those another replica claims too (already withdrawn).

        ``renew`` (a retry of a create that may have landed) only extends this replica's
        claims and reports no contest: the first claim already won. Raises a
        :class:`dispatcher.errors.DispatchError` when the claim could not be written or read.
        """
        ...
