"""The in-memory Pub/Sub twins keep Pub/Sub's delivery and publishing semantics.

Synchronous and deterministic: leases expire only when the test says so or the fake clock
has passed them; publish futures complete inside ``publish`` or ``complete_pending``.
"""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError

from dispatcher.adapters.pubsub import Delivery
from dispatcher.adapters.pubsub_limits import MAX_REQUEST_BYTES, max_data_bytes
from dispatcher.adapters.pubsub_memory import (
    SOURCE_DELIVERY_COUNT,
    DeliveryState,
    MemoryDelivery,
    MemorySubscription,
)
from dispatcher.adapters.pubsub_memory_publisher import MemoryPublisher, MemoryPubSub
from dispatcher.core.clock import FakeClock

TOPIC = "projects/p/topics/orders"
SUB = "projects/p/subscriptions/orders"
DLQ = "projects/p/topics/orders-dlq"


def setup(**policy: object) -> tuple[MemoryPublisher, MemorySubscription, FakeClock]:
    clock = FakeClock()
    broker = MemoryPubSub(clock=clock)
    subscription = broker.subscription(SUB, topic=TOPIC, **policy)  # type: ignore[arg-type]
    return MemoryPublisher(broker), subscription, clock


def one(subscription: MemorySubscription) -> MemoryDelivery:
    (delivery,) = subscription.pull(1)
    return delivery


def test_delivery_satisfies_the_protocol() -> None:
    publisher, subscription, _ = setup()
    publisher.publish(TOPIC, b"x", order_id="o-1")
    delivery: Delivery = one(subscription)
    assert (delivery.data, dict(delivery.attributes)) == (b"x", {"order_id": "o-1"})
    assert delivery.delivery_attempt is None  # no dead-letter policy, as in Pub/Sub


def test_nack_redelivers_with_the_next_attempt() -> None:
    publisher, subscription, _ = setup(max_delivery_attempts=5, dead_letter_topic=DLQ)
    message_id = publisher.publish(TOPIC, b"x").result()
    first = one(subscription)
    first.nack()
    second = one(subscription)
    assert (first.delivery_attempt, second.delivery_attempt) == (1, 2)
    assert second.message_id == message_id
    second.ack()
    assert subscription.is_acked(message_id) and subscription.unsettled() == []


def test_expired_lease_redelivers_and_a_late_ack_is_recorded() -> None:
    publisher, subscription, clock = setup(ack_deadline=10.0)
    publisher.publish(TOPIC, b"x")
    first = one(subscription)
    clock.advance(9.9)
    assert subscription.expire_due() == 0
    clock.advance(0.1)
    assert subscription.expire_due() == 1
    first.ack()  # too late: Pub/Sub has already given the message out again
    assert first.state is DeliveryState.EXPIRED
    assert [(s.action, s.state) for s in subscription.late_settlements] == [
        ("ack", DeliveryState.EXPIRED)
    ]
    second = one(subscription)
    assert subscription.attempts(second.message_id) == 2
    assert subscription.unsettled() == [second.message_id]


def test_ack_after_nack_is_recorded_not_accepted() -> None:
    publisher, subscription, _ = setup()
    publisher.publish(TOPIC, b"x")
    delivery = one(subscription)
    delivery.nack()
    delivery.ack()
    assert delivery.settlements == ["nack", "ack"]
    assert delivery.state is DeliveryState.NACKED
    assert not subscription.is_acked(delivery.message_id)
    assert subscription.ready_count() == 1
    assert subscription.late_settlements[0].action == "ack"


def test_duplicate_shares_the_message_id_and_the_first_ack_wins() -> None:
    publisher, subscription, _ = setup()
    publisher.publish(TOPIC, b"x")
    first = one(subscription)
    twin = subscription.duplicate(first.message_id)
    assert twin.message_id == first.message_id and twin is not first
    assert twin.attempt == first.attempt  # a duplicate is not a counted redelivery
    twin.ack()
    first.ack()
    assert subscription.is_acked(first.message_id)
    assert [s.message_acked for s in subscription.late_settlements] == [True]
    assert subscription.pull() == []


def test_nack_of_one_copy_requeues_once_and_an_ack_of_the_other_withdraws_it() -> None:
    publisher, subscription, _ = setup()
    publisher.publish(TOPIC, b"x")
    first = one(subscription)
    twin = subscription.duplicate(first.message_id)
    first.nack()
    assert subscription.ready_count() == 1
    twin.ack()
    assert subscription.ready_count() == 0 and subscription.pull() == []


def test_dead_letter_policy_forwards_after_max_attempts() -> None:
    publisher, subscription, _ = setup(max_delivery_attempts=5, dead_letter_topic=DLQ)
    message_id = publisher.publish(TOPIC, b"poison", k="v").result()
    for _ in range(5):
        one(subscription).nack()
    assert subscription.pull() == []
    assert subscription.is_dead_lettered(message_id)
    (forwarded,) = publisher.broker.topic(DLQ).messages
    assert forwarded.data == b"poison"
    assert forwarded.attributes["k"] == "v" and forwarded.attributes[SOURCE_DELIVERY_COUNT] == "5"


def test_policy_needs_both_halves() -> None:
    with pytest.raises(ValueError):
        setup(max_delivery_attempts=5)


def test_publisher_stores_per_topic_in_order() -> None:
    publisher, _, _ = setup()
    ids = [publisher.publish(TOPIC, f"{i}".encode(), n=str(i)).result() for i in range(3)]
    assert [m.message_id for m in publisher.messages(TOPIC)] == ids
    assert [m.attributes["n"] for m in publisher.messages(TOPIC)] == ["0", "1", "2"]


def test_injected_failures_fail_the_next_futures_only() -> None:
    publisher, subscription, _ = setup()
    publisher.fail_next(2, gexc.ServiceUnavailable("down"))
    futures = [publisher.publish(TOPIC, b"x") for _ in range(3)]
    assert [type(f.exception()) for f in futures[:2]] == [gexc.ServiceUnavailable] * 2
    assert futures[2].exception() is None
    assert len(publisher.messages(TOPIC)) == 1 and len(subscription.pull()) == 1


def test_resolve_later_stores_only_on_completion() -> None:
    clock = FakeClock()
    publisher = MemoryPublisher(MemoryPubSub(clock=clock), resolve_later=True)
    publisher.broker.topic(TOPIC)
    seen: list[str] = []
    future = publisher.publish(TOPIC, b"x")
    future.add_done_callback(lambda f: seen.append(f.result()))
    assert not future.done() and publisher.messages(TOPIC) == []
    assert publisher.complete_pending() == 1
    assert seen == [future.result()] and len(publisher.messages(TOPIC)) == 1


def test_oversized_message_raises_synchronously_like_the_client() -> None:
    publisher, _, _ = setup()
    attributes = {"a": "b"}
    fits = max_data_bytes(TOPIC, attributes)
    assert MAX_REQUEST_BYTES - 100 < fits < MAX_REQUEST_BYTES
    assert publisher.publish(TOPIC, b"\0" * fits, **attributes).exception() is None
    with pytest.raises(MessageTooLargeError):
        publisher.publish(TOPIC, b"\0" * (fits + 1), **attributes)


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ({f"k{i}": "v" for i in range(101)}, "101 attributes"),
        ({"k" * 257: "v"}, "key of 257 bytes"),
        ({"k": "é" * 513}, "of 1026 bytes"),
    ],
)
def test_server_refusals_fail_the_future(attributes: dict[str, str], why: str) -> None:
    publisher, _, _ = setup()
    error = publisher.publish(TOPIC, b"x", **attributes).exception()
    assert isinstance(error, gexc.InvalidArgument) and why in str(error)


def test_unknown_topic_and_empty_message_are_refused() -> None:
    publisher, _, _ = setup()
    assert isinstance(publisher.publish("projects/p/topics/nope", b"x").exception(), gexc.NotFound)
    assert isinstance(publisher.publish(TOPIC, b"").exception(), gexc.InvalidArgument)
