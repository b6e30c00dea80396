"""The Pub/Sub side of the loop model: a topic with one subscription, and its dead letters.

Unlike the Pub/Sub twin of the adapters, it records what the model's invariants judge: every
ack of a message whose order is not yet safe (in a Workflow, a dead letter or a live copy),
every nack, and every delivery attempt a lapsed lease spends.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

DLQ = "projects/p/topics/orders-dead-letter"
INTAKE = "projects/p/topics/orders"


@dataclass
class Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    order_id: str | None
    attempts: int = 0
    acked: bool = False
    leases: set[int] = field(default_factory=set)


class Delivery:
    """One delivery of a message (its own ack id); acks of a lapsed lease are ignored."""

    def __init__(self, broker: Broker, message: Message, lease: int) -> None:
        self._broker, self._message, self._lease = broker, message, lease
        self.data = message.data
        self.attributes = dict(message.attributes)
        self.message_id = message.message_id
        self.publish_time = None
        self.delivery_attempt = message.attempts + 1

    def ack(self) -> None:
        self._broker.ack(self._message, self._lease)

    def nack(self) -> None:
        self._broker.nacks += 1
        self._broker.lapse(self._message, self._lease)


class Broker:
    """A topic with one subscription, the dead-letter topic, and a publish port."""

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.dead_letters: list[Message] = []
        self.acked_unsafe: list[str] = []
        self.nacks = 0
        self.fail_publishes = 0
        self.publish_failed_for: set[str] = set()
        self._ids = itertools.count(1)
        self.is_safe: Callable[[Message], bool] = lambda _m: True

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        """The dispatcher's publish port (dead letters, re-parked copies); may fail."""
        future: Future[str] = Future()
        if self.fail_publishes:
            self.fail_publishes -= 1
            # The copy of this delivered message could not be stored: an outage, after which
            # the engine may leave the message to Pub/Sub (redelivered after its lease).
            source = attributes.get("original_message_id") or attributes.get("reparked_from")
            self.publish_failed_for.add(source or "")
            future.set_exception(RuntimeError("publish unavailable"))
            return future
        future.set_result(self.upstream(topic, data, **attributes))
        return future

    def upstream(self, topic: str, data: bytes, **attributes: str) -> str:
        """A message as an upstream team publishes it (never fails in the model)."""
        message_id = f"m{next(self._ids)}"
        message = Message(message_id, data, attributes, _order_id(data))
        if topic == DLQ:
            self.dead_letters.append(message)
        else:
            self.messages[message_id] = message
        return message_id

    def available(self) -> list[Message]:
        return [m for m in self.messages.values() if not m.acked and not m.leases]

    def leased(self) -> list[Message]:
        return [m for m in self.messages.values() if not m.acked and m.leases]

    def deliver(self, message: Message) -> Delivery:
        lease = next(self._ids)
        message.leases.add(lease)
        return Delivery(self, message, lease)

    def ack(self, message: Message, lease: int) -> None:
        if lease not in message.leases or message.acked:
            return  # Pub/Sub ignores an ack for a lapsed lease
        if not self.is_safe(message):
            self.acked_unsafe.append(message.message_id)
        message.acked = True
        message.leases.clear()

    def lapse(self, message: Message, lease: int) -> None:
        """A lease ends without an ack (nack, crash): redelivered later, one attempt spent."""
        if lease in message.leases:
            message.leases.discard(lease)
            if not message.leases:
                message.attempts += 1


def _order_id(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value.get("order_id") if isinstance(value, dict) else None


def safe_to_ack(message: Message, *, broker: Broker, workflows: list[Any]) -> bool:
    """Acking loses nothing: the order is in a Workflow, a dead letter or a live copy."""
    if any(
        d.attributes.get("original_message_id") == message.message_id for d in broker.dead_letters
    ):
        return True
    order_id = message.order_id
    if order_id is None:
        return False
    if any(order_id in w.order_ids for w in workflows):
        return True
    if any(d.order_id == order_id for d in broker.dead_letters):
        return True
    return any(
        m.order_id == order_id and not m.acked and m is not message
        for m in broker.messages.values()
    )
