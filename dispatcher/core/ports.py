"""The ports the core depends on, as Protocols: each has a real adapter and an in-memory twin.

The core and the loop code name these interfaces, never an SDK; the assembly code picks the
adapter (Kubernetes, Pub/Sub) or its twin (tests, the state-machine model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class OrderLedger(Protocol):
    """Order ids that became Workflows, remembered for the dedupe window across restarts.

    ``contains`` answers from memory and never blocks on I/O. ``record`` never blocks either:
    the ids are contained at once (locally), and ``on_done`` is called exactly once per call,
    with ``None`` when the ids are durable (a restarted or other replica will see them) or
    with the error (a :class:`dispatcher.errors.DispatchError`) when they could not be made
    durable within the adapter's retry policy. Ids whose write failed stay contained locally
    and are written again with the next batch, but ``on_done`` is not called a second time.
    """

    def start(self, timeout: float = 30.0) -> None: ...

    def stop(self) -> None: ...

    def synced(self) -> bool: ...

    def contains(self, order_id: str) -> bool: ...

    def record(
        self, order_ids: Sequence[str], on_done: Callable[[BaseException | None], None]
    ) -> None: ...
