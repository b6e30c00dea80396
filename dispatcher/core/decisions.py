"""Decisions as values: the engine says what to do, one executor carries it out.

Keeping the decision separate from the act makes the engine testable without any SDK and
gives one place (the executor) where acks, nacks and dead-letters happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from dispatcher.core.batching import Batch
from dispatcher.core.order import Reason

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Ack(Generic[R]):
    """The order is safe (in a Workflow, or dead-lettered): settle the delivery."""

    receipt: R


@dataclass(frozen=True, slots=True)
class Release(Generic[R]):
    """Give the delivery back for redelivery (nack); used on shutdown and transient failure."""

    receipt: R


@dataclass(frozen=True, slots=True)
class DeadLetter(Generic[R]):
    """Publish the original message to the dead-letter topic with a reason, then ack it."""

    receipt: R
    reason: Reason
    detail: str
    stage: str
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Repark(Generic[R]):
    """Held too long for its lease: publish a fresh copy upstream, then ack this delivery.

    A fresh message starts with no delivery attempts, so holding an order back never pushes
    it toward Pub/Sub's dead-letter threshold.
    """

    receipt: R
    size_class: str


@dataclass(frozen=True, slots=True)
class Create(Generic[R]):
    """Create the Workflow for this batch; the receipts are settled by the outcome."""

    batch: Batch[R]
    name: str


Decision = Ack[R] | Release[R] | DeadLetter[R] | Repark[R] | Create[R]
