"""The publish-then-settle path, as the service runs it: the executor and the router.

Both publish through ``service/copies.py``; these tests drive the real ``Executor`` (dead
letters, re-parks) and the real ``Router`` (class-topic copies, its dead letters) over the
in-memory publisher, and hold what each does when a publish is stored, late, refused, or too
large. The emulator tests in tests/pubsub hold the same on the real client and server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from dispatcher.adapters.pubsub_limits import MAX_ATTRIBUTES, max_data_bytes
from dispatcher.adapters.pubsub_memory import DeliveryState, MemoryDelivery
from dispatcher.adapters.pubsub_memory_publisher import MemoryPublisher, MemoryPubSub
from dispatcher.core.decisions import DeadLetter, Repark
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import Outcome, PublishFailed
from dispatcher.service.executor import Executor, Published
from dispatcher.service.metrics import Metrics
from dispatcher.service.router import Router
from tests.unit.helpers import DEAD_LETTER_TOPIC, ORDERS_TOPIC, settings, twin_executor

INTAKE = "projects/p/topics/intake"
DOWN = gexc.ServiceUnavailable("down")  # type: ignore[no-untyped-call]


class Broker:
    """One intake topic and subscription, the dead-letter and orders topics, one publisher."""

    def __init__(self, *topics: str) -> None:
        self.pubsub = MemoryPubSub()
        for topic in (DEAD_LETTER_TOPIC, ORDERS_TOPIC, *topics):
            self.pubsub.topic(topic)
        self.subscription = self.pubsub.subscription("projects/p/subscriptions/i", topic=INTAKE)
        self.publisher = MemoryPublisher(self.pubsub)

    def deliver(self, data: bytes, **attributes: str) -> MemoryDelivery:
        self.publisher.publish(INTAKE, data, **attributes).result()
        (delivery,) = self.subscription.pull()
        return delivery


class Loop:
    """The executor with its posted events kept, and ``published`` applied as the loop does."""

    def __init__(self, broker: Broker) -> None:
        self.events: list[object] = []
        self.executor: Executor[Any] = twin_executor(
            post=self.events.append, publisher=broker.publisher
        )

    def outcome(self) -> Outcome[Any] | None:
        """The one publish's end, as the engine would get it; nothing is left pending."""
        (event,) = self.events
        self.events.clear()
        assert isinstance(event, Published)
        outcome = self.executor.published(event)
        assert self.executor.pending_publishes == 0
        return outcome


def dead_letter(delivery: MemoryDelivery, detail: str = "bad") -> DeadLetter[MemoryDelivery]:
    return DeadLetter((delivery,), Reason.SCHEMA, detail, "intake", "o-1")


def order(order_id: str) -> bytes:
    return json.dumps({"order_id": order_id, "input": {"uri": "gs://b", "size_bytes": 10}}).encode()


# -- the executor --------------------------------------------------------------------------
def test_a_dead_letter_is_acked_only_once_stored() -> None:
    broker = Broker()
    delivery = broker.deliver(b"{", tenant="acme")
    broker.publisher.resolve_later = True
    loop = Loop(broker)
    loop.executor.carry_out([dead_letter(delivery)])
    assert delivery.settlements == [] and loop.events == []
    assert broker.publisher.messages(DEAD_LETTER_TOPIC) == []
    assert loop.executor.pending_publishes == 1  # drain waits for it
    broker.publisher.complete_pending()
    assert loop.outcome() is None and delivery.settlements == ["ack"]
    (stored,) = broker.publisher.messages(DEAD_LETTER_TOPIC)
    assert stored.data == b"{" and stored.attributes["tenant"] == "acme"
    assert stored.attributes["dlq_reason"] == "schema"
    assert stored.attributes["original_message_id"] == delivery.message_id


@pytest.mark.parametrize("fault", ["raised", "refused"])
def test_a_failed_dead_letter_is_the_engines_event_and_nothing_is_settled(fault: str) -> None:
    broker = Broker()
    delivery = broker.deliver(b"{")
    if fault == "raised":
        broker.publisher.stop()  # the real client raises RuntimeError from publish() then
    else:
        broker.publisher.fail_next(1, DOWN)
    loop = Loop(broker)
    loop.executor.carry_out([dead_letter(delivery)])
    outcome = loop.outcome()
    assert isinstance(outcome, PublishFailed) and not outcome.too_large
    assert outcome.decision.receipt is delivery  # the engine retries this very decision
    assert delivery.settlements == [] and delivery.state is DeliveryState.LIVE


def test_a_dead_letter_too_large_even_compact_is_nacked_for_pubsubs_policy() -> None:
    broker = Broker()
    delivery = broker.deliver(b"\0" * max_data_bytes(INTAKE, {}))
    loop = Loop(broker)
    loop.executor.carry_out([dead_letter(delivery, "d" * 1000)])
    outcome = loop.outcome()
    assert isinstance(outcome, PublishFailed) and outcome.too_large
    assert delivery.settlements == ["nack"]
    assert broker.publisher.messages(DEAD_LETTER_TOPIC) == []


@pytest.mark.parametrize("resolve_later", [False, True])
def test_a_repark_copy_over_the_limit_is_reported_too_large_and_left_unsettled(
    resolve_later: bool,
) -> None:
    broker = Broker()
    delivery = broker.deliver(b"\0" * max_data_bytes(INTAKE, {}))
    broker.publisher.resolve_later = resolve_later
    loop = Loop(broker)
    loop.executor.carry_out([Repark((delivery,), "large", "o-1")])
    outcome = loop.outcome()
    assert isinstance(outcome, PublishFailed) and outcome.too_large  # no retry of the same
    assert delivery.settlements == [] and broker.publisher.pending_count() == 0


def test_a_repark_publishes_one_copy_and_acks_every_delivery_after() -> None:
    broker = Broker()
    first, second = broker.deliver(order("o-1")), broker.deliver(order("o-1"))
    broker.publisher.resolve_later = True
    loop = Loop(broker)
    loop.executor.carry_out([Repark((first, second), "small", "o-1")])
    assert first.settlements == second.settlements == []
    broker.publisher.complete_pending()
    assert loop.outcome() is None
    assert first.settlements == second.settlements == ["ack"]
    (copy,) = broker.publisher.messages(ORDERS_TOPIC)
    assert copy.data == first.data
    assert copy.attributes == {"reparked_from": first.message_id, "size_class": "small"}


# -- the router ----------------------------------------------------------------------------
def router(broker: Broker) -> Router:
    return Router(settings(), publisher=broker.publisher, metrics=Metrics())


def class_topic(size_class: str) -> str:
    return settings().pubsub.class_topic_path(size_class)


def routing_broker() -> Broker:
    cfg = settings().pubsub
    return Broker(cfg.dead_letter_topic_path(), class_topic("small"))


def test_the_router_acks_an_order_once_its_class_copy_is_stored() -> None:
    broker = routing_broker()
    delivery = broker.deliver(order("o-1"), tenant="acme")
    broker.publisher.resolve_later = True
    router(broker).on_message(delivery)
    assert delivery.settlements == []
    broker.publisher.complete_pending()
    assert delivery.settlements == ["ack"]
    (copy,) = broker.publisher.messages(class_topic("small"))
    assert copy.attributes["order_id"] == "o-1" and copy.attributes["tenant"] == "acme"
    assert copy.attributes["routed_message_id"] == delivery.message_id


def test_the_router_dead_letters_a_rejected_order_then_acks() -> None:
    broker = routing_broker()
    delivery = broker.deliver(b"not json")
    router(broker).on_message(delivery)
    assert delivery.settlements == ["ack"]
    (stored,) = broker.publisher.messages(settings().pubsub.dead_letter_topic_path())
    assert stored.data == b"not json" and stored.attributes["dlq_stage"] == "validate"
    assert stored.attributes["dlq_reason"] == "invalid_json"


@pytest.mark.parametrize("fault", ["raised", "refused"])
@pytest.mark.parametrize("body", [order("o-1"), b"not json"])
def test_the_router_nacks_when_pubsub_refuses_the_publish(fault: str, body: bytes) -> None:
    broker = routing_broker()
    delivery = broker.deliver(body)
    if fault == "raised":
        broker.publisher.stop()
    else:
        broker.publisher.fail_next(1, DOWN)
    router(broker).on_message(delivery)  # never raises into the client's callback
    assert delivery.settlements == ["nack"]


def test_a_routed_copy_over_the_limit_is_dead_lettered_or_left_to_pubsub() -> None:
    # The four routing attributes take the message over Pub/Sub's attribute count; the dead
    # letter carries more attributes still, so the message is left whole to Pub/Sub's policy.
    broker = routing_broker()
    many = {f"a{i}": "v" for i in range(MAX_ATTRIBUTES - 3)}
    delivery = broker.deliver(order("o-1"), **many)
    metrics = Metrics()
    Router(settings(), publisher=broker.publisher, metrics=metrics).on_message(delivery)
    assert delivery.settlements == ["nack"]
    assert broker.publisher.messages(class_topic("small")) == []
    assert broker.publisher.messages(settings().pubsub.dead_letter_topic_path()) == []
    assert metrics.dead_letters_too_large._value.get() == 1
