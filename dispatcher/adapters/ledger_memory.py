"""In-memory twin of the dedupe ledger (placeholder until the durable ledger lands)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class MemoryLedger:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def contains(self, order_id: str) -> bool:
        return order_id in self.ids

    def record(
        self, order_ids: Sequence[str], on_done: Callable[[BaseException | None], None]
    ) -> None:
        self.ids.update(order_ids)
        on_done(None)
