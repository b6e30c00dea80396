"""Messages near Pub/Sub's 10 MB limit, on a real server with the real client.

Why: production has no receive limit on its channel, the emulator channel the client opens by
itself has gRPC's 4 MiB one, so without the factories in ``dispatcher.adapters.pubsub_clients``
such a message never arrives in a test. And a dead letter adds attributes to a message that
just fit: it must be stored (compactly if need be) or reported as too large with the delivery
untouched, never raise, and the order must end up stored intact somewhere. The dead letters
here go through the service's own executor and router, as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from dispatcher.adapters.pubsub import (
    compact_dead_letter_attributes,
    dead_letter_attributes,
    fitting_dead_letter_attributes,
)
from dispatcher.adapters.pubsub_limits import max_data_bytes
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import Outcome, PublishFailed
from dispatcher.service.executor import Published
from dispatcher.service.metrics import Metrics
from dispatcher.service.router import Router
from tests.polling import poll
from tests.pubsub.plugin import (
    MakeTopicSubscription,
    PubSubClients,
    TopicSubscription,
)
from tests.pubsub.test_emulator import streaming_pull
from tests.unit.helpers import settings, twin_executor

pytestmark = [pytest.mark.pubsub, pytest.mark.large_messages]

NEAR_LIMIT = 9_999_800
DEADLINE_S = 60.0


class Observed:
    """A received message that records how it was settled (and passes it on)."""

    def __init__(self, message: Any) -> None:
        self._message = message
        self.data: bytes = message.data
        self.attributes = message.attributes
        self.message_id: str = message.message_id
        self.publish_time = message.publish_time
        self.delivery_attempt: int | None = message.delivery_attempt
        self.settlements: list[str] = []

    def ack(self) -> None:
        self.settlements.append("ack")
        self._message.ack()

    def nack(self) -> None:
        self.settlements.append("nack")
        self._message.nack()


class Inbox:
    """Streaming-pull callback: keeps the first delivery, hands later ones to ``later``."""

    def __init__(self, later: Callable[[Any], None] = lambda m: None) -> None:
        self.first: Observed | None = None
        self.deliveries = 0
        self._later = later
        self._lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        with self._lock:
            self.deliveries += 1
            if self.first is None:
                self.first = Observed(message)
                return
        self._later(message)


def read_back(clients: PubSubClients, subscription: str) -> Any:
    """One message from ``subscription`` by unary pull (acked), within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        response = clients.subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
        if response.received_messages:
            (received,) = response.received_messages
            clients.subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
            return received.message
    pytest.fail(f"nothing arrived on {subscription} within {DEADLINE_S}s")


def body(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def dead_letter(detail: str, delivery: Any = None) -> DeadLetter[Any]:
    return DeadLetter(
        receipts=(delivery,),
        reason=Reason.BODY_TOO_LARGE,
        detail=detail,
        stage="intake",
        order_id=None,
    )


def test_a_message_near_the_limit_arrives_through_the_factory_channel(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription(prefix="big")
    data = body(9_900_000)
    pubsub_clients.publisher.publish(names.topic, data, order_id="o-big").result(timeout=60)
    inbox = Inbox()
    with streaming_pull(pubsub_clients, names.subscription, inbox):
        poll(lambda: inbox.first is not None, DEADLINE_S, "the 9.9 MB message")
        assert inbox.first is not None
        assert inbox.first.data == data and inbox.first.attributes["order_id"] == "o-big"
        inbox.first.ack()

    # The same message through the channel the client opens by itself: the 4 MiB default.
    from google.cloud import pubsub_v1

    pubsub_clients.publisher.publish(names.topic, data).result(timeout=60)
    with pubsub_v1.SubscriberClient() as default, pytest.raises(gexc.ResourceExhausted):
        default.pull(subscription=names.subscription, max_messages=1, timeout=30)


def dead_letter_through_the_emulator(
    clients: PubSubClients, names: TopicSubscription, size: int, detail: str
) -> tuple[Observed, dict[str, str] | None, Outcome[Any] | None]:
    """Publish an order of ``size`` bytes, receive it, dead-letter it with the service's
    executor; return the delivery, the attributes chosen, and the engine's outcome."""
    assert names.dead_letter_topic is not None
    clients.publisher.publish(names.topic, body(size), tenant="acme").result(timeout=60)
    inbox = Inbox(later=lambda m: m.nack())
    events: list[object] = []
    executor = twin_executor(
        post=events.append, publisher=clients.publisher, dead_letter_topic=names.dead_letter_topic
    )
    with streaming_pull(clients, names.subscription, inbox):
        poll(lambda: inbox.first is not None, DEADLINE_S, "the order")
        delivery = inbox.first
        assert delivery is not None
        decision = dead_letter(detail, delivery)
        expected = fitting_dead_letter_attributes(names.dead_letter_topic, delivery, decision)
        executor.carry_out([decision])  # never raises
        poll(lambda: bool(events), DEADLINE_S, "the dead letter's outcome")
        (published,) = events
        assert isinstance(published, Published)
        outcome = executor.published(published)
        if outcome is not None:
            # The executor nacked it: redeliveries until Pub/Sub's policy takes over.
            poll(lambda: inbox.deliveries >= 5, DEADLINE_S, "Pub/Sub's dead-letter policy")
    return delivery, expected, outcome


def test_dead_letter_of_a_near_limit_order_never_raises_and_the_order_is_kept(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription(prefix="dlbig", max_delivery_attempts=5)
    assert names.dead_letter_subscription is not None
    delivery, expected, outcome = dead_letter_through_the_emulator(
        pubsub_clients, names, NEAR_LIMIT, "body of 9999800 bytes is over max_order_bytes"
    )
    stored = read_back(pubsub_clients, names.dead_letter_subscription)
    assert stored.data == body(NEAR_LIMIT)
    if expected is None:
        assert isinstance(outcome, PublishFailed) and outcome.too_large
        assert delivery.settlements == ["nack"]  # the executor's, for Pub/Sub's policy
        assert stored.attributes["tenant"] == "acme" and "dlq_reason" not in stored.attributes
    else:
        assert outcome is None and delivery.settlements == ["ack"]
        assert dict(stored.attributes) == expected


def test_the_router_leaves_a_near_limit_order_whole_to_pubsubs_policy(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    """class_topics mode: the intake refuses the body; its dead letter fits nowhere."""
    names = make_topic_subscription(prefix="rtbig", max_delivery_attempts=5)
    assert names.dead_letter_topic is not None and names.dead_letter_subscription is not None
    base = settings()
    cfg = base.model_copy(
        update={
            "pubsub": base.pubsub.model_copy(update={"dead_letter_topic": names.dead_letter_topic})
        }
    )
    metrics = Metrics()
    router = Router(cfg, publisher=pubsub_clients.publisher, metrics=metrics)
    pubsub_clients.publisher.publish(names.topic, body(NEAR_LIMIT), tenant="acme").result(60)
    inbox = Inbox(later=lambda m: m.nack())
    with streaming_pull(pubsub_clients, names.subscription, inbox):
        poll(lambda: inbox.first is not None, DEADLINE_S, "the order")
        delivery = inbox.first
        assert delivery is not None
        router.on_message(delivery)  # never raises into the client's callback
        poll(lambda: bool(delivery.settlements), DEADLINE_S, "the router to settle the delivery")
        assert delivery.settlements == ["nack"]
        assert metrics.dead_letters_too_large._value.get() == 1
        poll(lambda: inbox.deliveries >= 5, DEADLINE_S, "Pub/Sub's dead-letter policy")
    stored = read_back(pubsub_clients, names.dead_letter_subscription)
    assert stored.data == body(NEAR_LIMIT)
    assert stored.attributes["tenant"] == "acme" and "dlq_reason" not in stored.attributes


def test_a_dead_letter_that_fits_only_compact_is_stored_compact(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription(prefix="dlcompact", max_delivery_attempts=5)
    assert names.dead_letter_topic is not None and names.dead_letter_subscription is not None
    detail = "d" * 1000
    # The real message id and publish time are known only after publishing: size the body
    # from stand-ins, halfway between the two limits (they are ~1 kB apart, the guess is
    # within a few dozen bytes).
    stand_in = Observed(
        type(
            "M",
            (),
            {
                "data": b"",
                "attributes": {"tenant": "acme"},
                "message_id": "1" * 20,
                "publish_time": datetime.now(UTC),
                "delivery_attempt": None,
            },
        )()
    )
    full = max_data_bytes(
        names.dead_letter_topic, dead_letter_attributes(stand_in, dead_letter(detail))
    )
    compact = max_data_bytes(
        names.dead_letter_topic, compact_dead_letter_attributes(stand_in, dead_letter(detail))
    )
    size = (full + compact) // 2
    delivery, expected, outcome = dead_letter_through_the_emulator(
        pubsub_clients, names, size, detail
    )
    assert expected == compact_dead_letter_attributes(delivery, dead_letter(detail))
    assert outcome is None and delivery.settlements == ["ack"]
    stored = read_back(pubsub_clients, names.dead_letter_subscription)
    assert stored.data == body(size) and dict(stored.attributes) == expected
    assert set(expected) == {
        "tenant",
        "dlq_reason",
        "dlq_detail",
        "dlq_stage",
        "original_message_id",
    }
