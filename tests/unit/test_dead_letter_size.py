"""Dead letters near Pub/Sub's size limit: computed size, compact fallback, never an exception.

Runs against the in-memory twins (the emulator tests in tests/pubsub cover the real client).
The size function is held equal to the protobuf serializer the client itself uses.
"""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from google.api_core import exceptions as gexc
from google.pubsub_v1 import types as gapic
from hypothesis import event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dispatcher.adapters.pubsub import (
    DeadLetterPublisher,
    Republisher,
    compact_dead_letter_attributes,
    dead_letter_attributes,
)
from dispatcher.adapters.pubsub_limits import (
    MAX_REQUEST_BYTES,
    TooLargeToDeadLetter,
    TooLargeToPublish,
    attribute_problem,
    max_data_bytes,
    publish_problem,
    publish_request_bytes,
)
from dispatcher.adapters.pubsub_memory import DeliveryState, MemoryDelivery
from dispatcher.adapters.pubsub_memory_publisher import MemoryPublisher, MemoryPubSub
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Reason

TOPIC = "projects/test-project/topics/orders"
DLQ = "projects/test-project/topics/orders-dead-letter"
text = st.text(st.characters(codec="utf-8"), max_size=40)


@given(topic=text, data=st.binary(max_size=300), attributes=st.dictionaries(text, text))
@hsettings(max_examples=300, deadline=None)
def test_size_matches_the_clients_serializer(
    topic: str, data: bytes, attributes: dict[str, str]
) -> None:
    request = gapic.PublishRequest(
        topic=topic, messages=[gapic.PubsubMessage(data=data, attributes=attributes)]
    )
    assert publish_request_bytes(topic, len(data), attributes) == request._pb.ByteSize()


wide = st.characters(codec="utf-8", exclude_categories=["Cs"])


@given(
    topic=st.text(wide, max_size=300),
    data_length=st.one_of(st.integers(0, 1000), st.integers(8_990_000, 10_000_100)),
    attributes=st.dictionaries(
        st.text(wide, max_size=80), st.text(wide, max_size=300), max_size=102
    ),
)
@hsettings(max_examples=400, deadline=None)
def test_the_quick_path_never_accepts_what_the_exact_rule_refuses(
    topic: str, data_length: int, attributes: dict[str, str]
) -> None:
    exact = (
        publish_request_bytes(topic, data_length, attributes) <= MAX_REQUEST_BYTES
        and attribute_problem(attributes) is None
    )
    assert (publish_problem(topic, data_length, attributes) is None) == exact
    event("refused" if not exact else "fits, big" if data_length > 9_000_000 else "fits")


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[tuple[bool, BaseException | None]] = []

    def __call__(self, ok: bool, error: BaseException | None) -> None:
        self.seen.append((ok, error))


def delivered(size: int, attributes: dict[str, str]) -> tuple[MemoryPublisher, MemoryDelivery]:
    broker = MemoryPubSub()
    broker.topic(DLQ)
    subscription = broker.subscription("projects/test-project/subscriptions/o", topic=TOPIC)
    publisher = MemoryPublisher(broker)
    publisher.publish(TOPIC, b"\x7b" * size, **attributes).result()
    (delivery,) = subscription.pull()
    return publisher, delivery


def decision(detail: str, reason: Reason = Reason.BODY_TOO_LARGE) -> DeadLetter[MemoryDelivery]:
    return DeadLetter(
        receipts=(None,), reason=reason, detail=detail, stage="intake", order_id="o-1"
    )  # type: ignore[arg-type]


@given(
    below=st.integers(0, 3000),
    detail=st.text(max_size=1500),
    original=st.dictionaries(st.sampled_from(["order_id", "tenant", "trace"]), text),
)
@hsettings(max_examples=150, deadline=None)
def test_compact_exactly_when_full_does_not_fit(
    below: int, detail: str, original: dict[str, str]
) -> None:
    size = max_data_bytes(TOPIC, original) - below
    publisher, delivery = delivered(size, original)
    dead = decision(detail)
    full = dead_letter_attributes(delivery, dead)
    compact = compact_dead_letter_attributes(delivery, dead)
    full_fits = publish_problem(DLQ, size, full) is None
    compact_fits = publish_problem(DLQ, size, compact) is None
    chosen = DeadLetterPublisher(publisher, DLQ).attributes_for(delivery, dead)
    assert chosen == (full if full_fits else compact if compact_fits else None)
    event("full" if full_fits else "compact" if compact_fits else "too large")

    outcomes = Outcomes()
    DeadLetterPublisher(publisher, DLQ).publish(delivery, dead, on_done=outcomes)  # never raises
    (ok, error), *_ = outcomes.seen
    if chosen is None:
        assert not ok and isinstance(error, TooLargeToDeadLetter)
        assert delivery.settlements == [] and delivery.state is DeliveryState.LIVE
        assert publisher.messages(DLQ) == []
    else:
        assert ok and delivery.settlements == ["ack"]
        (stored,) = publisher.messages(DLQ)
        assert stored.attributes == chosen and len(stored.data) == size


def test_the_three_outcomes_all_occur_near_the_limit() -> None:
    """Guards the property above against a generator that never reaches a branch."""
    dead = decision("x" * 1000)
    publisher, delivery = delivered(100, {})
    full = dead_letter_attributes(delivery, dead)
    compact = compact_dead_letter_attributes(delivery, dead)
    for size, expected in [
        (max_data_bytes(DLQ, full), full),
        (max_data_bytes(DLQ, full) + 1, compact),
        (max_data_bytes(DLQ, compact) + 1, None),
    ]:
        assert size <= max_data_bytes(TOPIC, {})  # the original itself fit
        chosen = DeadLetterPublisher(publisher, DLQ).attributes_for(_sized(delivery, size), dead)
        assert chosen == expected


def _sized(delivery: MemoryDelivery, size: int) -> MemoryDelivery:
    delivery.data = b"\0" * size
    return delivery


def test_failures_raised_by_publish_arrive_through_on_done_and_nack() -> None:
    publisher, delivery = delivered(10, {})
    publisher.stop()  # the real client raises RuntimeError from publish() after stop()
    outcomes = Outcomes()
    future = DeadLetterPublisher(publisher, DLQ).publish(delivery, decision("d"), outcomes)
    assert isinstance(future, Future) and isinstance(future.exception(), RuntimeError)
    assert [(ok, type(e)) for ok, e in outcomes.seen] == [(False, RuntimeError)]
    assert delivery.settlements == ["nack"]


def test_failed_future_nacks_and_reports() -> None:
    publisher, delivery = delivered(10, {})
    publisher.fail_next(1, gexc.ServiceUnavailable("down"))
    outcomes = Outcomes()
    DeadLetterPublisher(publisher, DLQ).publish(delivery, decision("d"), outcomes)
    assert [(ok, type(e)) for ok, e in outcomes.seen] == [(False, gexc.ServiceUnavailable)]
    assert delivery.settlements == ["nack"]


def test_the_delivery_is_settled_only_once_the_dead_letter_is_stored() -> None:
    publisher, delivery = delivered(10, {"tenant": "acme"})
    publisher.resolve_later = True
    outcomes = Outcomes()
    DeadLetterPublisher(publisher, DLQ).publish(delivery, decision("bad"), outcomes)
    assert delivery.settlements == [] and outcomes.seen == [] and publisher.messages(DLQ) == []
    publisher.complete_pending()
    assert delivery.settlements == ["ack"] and outcomes.seen == [(True, None)]
    (stored,) = publisher.messages(DLQ)
    assert stored.attributes["dlq_reason"] == "body_too_large"
    assert stored.attributes["tenant"] == "acme"


@pytest.mark.parametrize("resolve_later", [False, True])
def test_republish_of_a_copy_over_the_limit_is_reported_unsettled(resolve_later: bool) -> None:
    publisher, delivery = delivered(max_data_bytes(TOPIC, {}), {})
    publisher.resolve_later = resolve_later
    outcomes = Outcomes()
    Republisher(publisher, lambda name: DLQ).move(
        delivery, size_class="large", extra={"reparked_from": delivery.message_id}, on_done=outcomes
    )
    [(ok, error)] = outcomes.seen
    assert not ok and type(error) is TooLargeToPublish
    assert delivery.settlements == [] and publisher.pending_count() == 0


def test_max_data_bytes_is_the_boundary() -> None:
    largest = max_data_bytes(TOPIC, {"k": "v"})
    assert publish_request_bytes(TOPIC, largest, {"k": "v"}) <= MAX_REQUEST_BYTES
    assert publish_request_bytes(TOPIC, largest + 1, {"k": "v"}) > MAX_REQUEST_BYTES
