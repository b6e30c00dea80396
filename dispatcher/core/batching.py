"""Per-class batching: up to N orders, B input bytes and O object bytes, or T seconds.

Small orders share one Workflow (fan-out happens inside Argo), which is what keeps API writes
and etcd objects per order low. A batch closes when the next order would break a bound, when
it is full, when its first order has waited ``max_linger_seconds``, or on flush at shutdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from dispatcher.core.classify import Ticket
from dispatcher.core.settings import Settings, SizeClass
from dispatcher.core.wire_size import OBJECT_OVERHEAD_BYTES

R = TypeVar("R")


def ticket_object_bytes(ticket: Ticket[R]) -> int:
    """How many bytes one order adds to the stored Workflow object (see core/wire_size.py)."""
    return ticket.object_bytes


@dataclass(frozen=True, slots=True)
class Batch(Generic[R]):
    """Orders of one class that become one Workflow."""

    size_class: str
    tickets: tuple[Ticket[R], ...]
    opened_at: float

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(t.order_id for t in self.tickets)

    @property
    def input_bytes(self) -> int:
        return sum(t.size_bytes for t in self.tickets)

    @property
    def object_bytes(self) -> int:
        return OBJECT_OVERHEAD_BYTES + sum(ticket_object_bytes(t) for t in self.tickets)

    def receipts(self) -> Iterator[R]:
        for ticket in self.tickets:
            yield from ticket.receipts


class ClassBatcher(Generic[R]):
    """The open batch of one size class."""

    def __init__(self, size_class: SizeClass, *, max_object_bytes: int) -> None:
        self.size_class = size_class
        self._max_object_bytes = max_object_bytes
        self._open: list[Ticket[R]] = []
        self._by_id: dict[str, Ticket[R]] = {}
        self._opened_at = 0.0
        self._input_bytes = 0
        self._object_bytes = OBJECT_OVERHEAD_BYTES

    def __len__(self) -> int:
        return len(self._open)

    def find(self, order_id: str) -> Ticket[R] | None:
        return self._by_id.get(order_id)

    def deadline(self) -> float | None:
        if not self._open:
            return None
        return self._opened_at + self.size_class.max_linger_seconds

    def add(self, ticket: Ticket[R], now: float) -> list[Batch[R]]:
        """Take one ticket; return the batches this closes (zero, one or two)."""
        if ticket.size_class != self.size_class.name:
            raise ValueError(f"ticket of class {ticket.size_class} in {self.size_class.name}")
        if ticket.order_id in self._by_id:
            raise ValueError(f"order {ticket.order_id} is already in the open batch")
        closed: list[Batch[R]] = []
        weight = ticket_object_bytes(ticket)
        if self._open and (
            self._input_bytes + ticket.size_bytes > self.size_class.max_batch_input_bytes
            or self._object_bytes + weight > self._max_object_bytes
        ):
            closed.append(self._close())
        if not self._open:
            self._opened_at = now
        self._open.append(ticket)
        self._by_id[ticket.order_id] = ticket
        self._input_bytes += ticket.size_bytes
        self._object_bytes += weight
        if (
            len(self._open) >= self.size_class.max_orders_per_workflow
            or self.size_class.max_linger_seconds <= 0
        ):
            closed.append(self._close())
        return closed

    def due(self, now: float) -> list[Batch[R]]:
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            return [self._close()]
        return []

    def flush(self) -> list[Batch[R]]:
        return [self._close()] if self._open else []

    def _close(self) -> Batch[R]:
        batch = Batch(self.size_class.name, tuple(self._open), self._opened_at)
        self._open = []
        self._by_id = {}
        self._input_bytes = 0
        self._object_bytes = OBJECT_OVERHEAD_BYTES
        return batch


class Batcher(Generic[R]):
    """One :class:`ClassBatcher` per size class, addressed by class name."""

    def __init__(self, settings: Settings) -> None:
        self._classes = {
            c.name: ClassBatcher[R](c, max_object_bytes=settings.orders.max_workflow_object_bytes)
            for c in settings.classes
        }

    def __getitem__(self, name: str) -> ClassBatcher[R]:
        return self._classes[name]

    def __iter__(self) -> Iterator[ClassBatcher[R]]:
        return iter(self._classes.values())

    def held(self) -> int:
        return sum(len(b) for b in self._classes.values())

    def find(self, order_id: str) -> Ticket[R] | None:
        for batcher in self._classes.values():
            found = batcher.find(order_id)
            if found is not None:
                return found
        return None

    def add(self, ticket: Ticket[R], now: float) -> list[Batch[R]]:
        return self._classes[ticket.size_class].add(ticket, now)

    def due(self, now: float) -> list[Batch[R]]:
        return _chain(b.due(now) for b in self._classes.values())

    def flush(self) -> list[Batch[R]]:
        return _chain(b.flush() for b in self._classes.values())

    def next_deadline(self) -> float | None:
        deadlines = [d for b in self._classes.values() if (d := b.deadline()) is not None]
        return min(deadlines, default=None)


def _chain(groups: Iterable[list[Batch[R]]]) -> list[Batch[R]]:
    return [batch for group in groups for batch in group]
