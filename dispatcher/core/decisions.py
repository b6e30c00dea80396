"""Decisions as values: the engine says what to do, one executor carries it out.

Each decision carries everything needed to carry it out (the rendered Workflow, the
deliveries to settle afterwards), so the executor needs no state of its own and no look-up in
the engine. There is no "nack" decision: backpressure and shutdown never spend a Pub/Sub
delivery attempt (see docs/architecture.md); only a poison message that cannot even be
dead-lettered is left to Pub/Sub's own dead-letter policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dispatcher.core.order import Reason

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Ack(Generic[R]):
    """The order is safe (inside a Workflow that exists): settle these deliveries."""

    receipts: tuple[R, ...]
    workflow: str | None = None  # set when this ack follows the Workflow's create
    size_class: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter(Generic[R]):
    """Publish the first delivery to the dead-letter topic with a reason, then ack them all."""

    receipts: tuple[R, ...]
    reason: Reason
    detail: str
    stage: str
    order_id: str | None = None
    attempt: int = 1

    @property
    def receipt(self) -> R:
        return self.receipts[0]


@dataclass(frozen=True, slots=True)
class Repark(Generic[R]):
    """Publish one fresh copy of the order (from its first delivery), then ack every delivery.

    A fresh message starts with no delivery attempts, so holding an order back (or draining)
    never pushes it toward Pub/Sub's dead-letter threshold. One copy per order, whatever the
    number of deliveries it had: copies are never multiplied.
    """

    receipts: tuple[R, ...]
    size_class: str
    order_id: str
    attempt: int = 1

    @property
    def receipt(self) -> R:
        return self.receipts[0]


@dataclass(frozen=True, slots=True)
class Create:
    """Create this Workflow; the engine settles its orders when the outcome comes back."""

    name: str
    body: dict[str, Any]
    size_class: str
    order_ids: tuple[str, ...]
    #: 1 for the first POST; a retry after an answer was lost renews the claim only.
    attempt: int = 1


Decision = Ack[R] | DeadLetter[R] | Repark[R] | Create
