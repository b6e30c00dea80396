"""In-memory twin of Pub/Sub's data plane: topics, subscriptions, leases and deliveries.

Why: the decision loop must be tested step by step against Pub/Sub's delivery semantics
(redelivery after a nack or an expired lease, duplicates, delivery attempts, the dead-letter
policy) without a server, threads or sleeps. Everything here is synchronous and
deterministic; time is an injected clock and a lease expires only when the test says so
(:meth:`MemorySubscription.expire`) or when the clock has passed it
(:meth:`MemorySubscription.expire_due`).

Each :class:`MemoryDelivery` satisfies the ``Delivery`` protocol of ``adapters.pubsub`` and
records every ack and nack called on it. Only the first settlement of a live lease has an
effect, as with Pub/Sub; any other (an ack after a nack, a second ack, an ack after the lease
expired) is kept in :attr:`MemorySubscription.late_settlements` so a test can assert on it
instead of it passing silently. The real adapters stay tested against real servers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from itertools import count

from dispatcher.core.clock import Clock

#: Set by Pub/Sub on messages its dead-letter policy forwards.
SOURCE_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as a topic stored it."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    publish_time: datetime


class MemoryTopic:
    """Stores what is published and fans it out to the subscriptions attached to it."""

    def __init__(self, name: str, *, ids: count[int], clock: Clock) -> None:
        self.name = name
        self.messages: list[StoredMessage] = []
        self.subscriptions: list[MemorySubscription] = []
        self._ids = ids
        self._clock = clock

    def publish(self, data: bytes, attributes: dict[str, str]) -> StoredMessage:
        message = StoredMessage(
            data=data,
            attributes=dict(attributes),
            message_id=str(next(self._ids)),
            publish_time=datetime.fromtimestamp(self._clock(), UTC),
        )
        self.messages.append(message)
        for subscription in self.subscriptions:
            subscription.enqueue(message)
        return message


class DeliveryState(StrEnum):
    LIVE = "live"
    ACKED = "acked"
    NACKED = "nacked"
    EXPIRED = "expired"


class MemoryDelivery:
    """One delivery of one message under one lease (what the subscriber callback gets)."""

    def __init__(
        self,
        subscription: MemorySubscription,
        message: StoredMessage,
        *,
        attempt: int,
        lease_until: float,
        report_attempt: bool,
    ) -> None:
        self.data = message.data
        self.attributes: dict[str, str] = dict(message.attributes)
        self.message_id = message.message_id
        self.publish_time = message.publish_time
        self.attempt = attempt
        self.delivery_attempt: int | None = attempt if report_attempt else None
        self.lease_until = lease_until
        self.state = DeliveryState.LIVE
        self.settlements: list[str] = []
        self._subscription = subscription

    def ack(self) -> None:
        self.settlements.append("ack")
        self._subscription.settle(self, "ack")

    def nack(self) -> None:
        self.settlements.append("nack")
        self._subscription.settle(self, "nack")

    def __repr__(self) -> str:
        return f"MemoryDelivery({self.message_id}#{self.attempt}, {self.state.value})"


@dataclass(frozen=True, slots=True)
class LateSettlement:
    """An ack or nack that had no effect, and why."""

    message_id: str
    attempt: int
    action: str
    state: DeliveryState
    message_acked: bool


@dataclass(slots=True)
class _Progress:
    message: StoredMessage
    attempts: int = 0
    acked: bool = False
    dead_lettered: bool = False
    queued: bool = False
    live: list[MemoryDelivery] = field(default_factory=list)


class MemorySubscription:
    """Leases, redelivery and the dead-letter policy of one subscription."""

    def __init__(
        self,
        name: str,
        topic: MemoryTopic,
        *,
        clock: Clock,
        ack_deadline: float = 10.0,
        max_delivery_attempts: int | None = None,
        dead_letter_topic: MemoryTopic | None = None,
    ) -> None:
        if (max_delivery_attempts is None) != (dead_letter_topic is None):
            raise ValueError("a dead-letter policy needs both a topic and max attempts")
        self.name = name
        self.topic = topic
        self.ack_deadline = ack_deadline
        self.max_delivery_attempts = max_delivery_attempts
        self.dead_letter_topic = dead_letter_topic
        self.late_settlements: list[LateSettlement] = []
        self.deliveries: list[MemoryDelivery] = []
        self._clock = clock
        self._progress: dict[str, _Progress] = {}
        self._ready: deque[str] = deque()
        topic.subscriptions.append(self)

    # -- the server side ---------------------------------------------------------------
    def enqueue(self, message: StoredMessage) -> None:
        self._progress[message.message_id] = _Progress(message)
        self._make_ready(message.message_id)

    def pull(self, max_messages: int = 1_000_000) -> list[MemoryDelivery]:
        """Lease up to ``max_messages`` ready messages, oldest first."""
        out: list[MemoryDelivery] = []
        while self._ready and len(out) < max_messages:
            progress = self._progress[self._ready.popleft()]
            progress.queued = False
            progress.attempts += 1
            out.append(self._deliver(progress))
        return out

    def deliver_to(
        self, callback: Callable[[MemoryDelivery], None], max_messages: int = 1_000_000
    ) -> int:
        """Pull and hand each delivery to ``callback``, as a streaming pull does; how many."""
        deliveries = self.pull(max_messages)
        for delivery in deliveries:
            callback(delivery)
        return len(deliveries)

    def duplicate(self, message_id: str) -> MemoryDelivery:
        """Deliver a message again while its lease is still live (Pub/Sub's at-least-once)."""
        progress = self._progress[message_id]
        if progress.acked or progress.dead_lettered:
            raise ValueError(f"message {message_id} is settled; Pub/Sub would not redeliver it")
        return self._deliver(progress)

    def expire(self, delivery: MemoryDelivery) -> None:
        """The lease of ``delivery`` ran out: the message becomes ready again (attempt + 1)."""
        if delivery.state is DeliveryState.LIVE:
            self._end(delivery, DeliveryState.EXPIRED)

    def expire_due(self) -> int:
        """Expire every live lease the clock has passed; return how many."""
        now = self._clock()
        due = [d for d in self.deliveries if d.state is DeliveryState.LIVE and d.lease_until <= now]
        for delivery in due:
            self.expire(delivery)
        return len(due)

    def extend(self, delivery: MemoryDelivery, seconds: float) -> None:
        """Modify the ack deadline of a live lease (what the client's lease manager does)."""
        if delivery.state is DeliveryState.LIVE:
            delivery.lease_until = self._clock() + seconds

    # -- the client side: MemoryDelivery.ack()/nack() land here --------------------------
    def settle(self, delivery: MemoryDelivery, action: str) -> None:
        progress = self._progress[delivery.message_id]
        if delivery.state is not DeliveryState.LIVE or progress.acked or progress.dead_lettered:
            self.late_settlements.append(
                LateSettlement(
                    delivery.message_id,
                    delivery.attempt,
                    action,
                    delivery.state,
                    progress.acked,
                )
            )
            return
        if action == "ack":
            delivery.state = DeliveryState.ACKED
            progress.live.remove(delivery)
            progress.acked = True
            self._ready_discard(progress)
        else:
            self._end(delivery, DeliveryState.NACKED)

    # -- what a test reads -------------------------------------------------------------
    def attempts(self, message_id: str) -> int:
        """Deliveries counted toward the dead-letter policy so far (duplicates excluded)."""
        return self._progress[message_id].attempts

    def is_acked(self, message_id: str) -> bool:
        return self._progress[message_id].acked

    def is_dead_lettered(self, message_id: str) -> bool:
        return self._progress[message_id].dead_lettered

    def ready_count(self) -> int:
        return len(self._ready)

    def outstanding(self) -> list[MemoryDelivery]:
        return [d for d in self.deliveries if d.state is DeliveryState.LIVE]

    def unsettled(self) -> list[str]:
        """Message ids neither acked nor forwarded by the dead-letter policy."""
        return [m for m, p in self._progress.items() if not (p.acked or p.dead_lettered)]

    # -- internals ---------------------------------------------------------------------
    def _deliver(self, progress: _Progress) -> MemoryDelivery:
        delivery = MemoryDelivery(
            self,
            progress.message,
            attempt=max(progress.attempts, 1),
            lease_until=self._clock() + self.ack_deadline,
            report_attempt=self.max_delivery_attempts is not None,
        )
        progress.live.append(delivery)
        self.deliveries.append(delivery)
        return delivery

    def _end(self, delivery: MemoryDelivery, state: DeliveryState) -> None:
        delivery.state = state
        progress = self._progress[delivery.message_id]
        progress.live.remove(delivery)
        if progress.acked or progress.dead_lettered or progress.queued:
            return
        limit = self.max_delivery_attempts
        if limit is not None and self.dead_letter_topic is not None and progress.attempts >= limit:
            progress.dead_lettered = True
            attributes = dict(progress.message.attributes)
            attributes[SOURCE_DELIVERY_COUNT] = str(progress.attempts)
            attributes[SOURCE_SUBSCRIPTION] = self.name
            self.dead_letter_topic.publish(progress.message.data, attributes)
            return
        self._make_ready(delivery.message_id)

    def _make_ready(self, message_id: str) -> None:
        self._progress[message_id].queued = True
        self._ready.append(message_id)

    def _ready_discard(self, progress: _Progress) -> None:
        if progress.queued:
            progress.queued = False
            self._ready.remove(progress.message.message_id)
