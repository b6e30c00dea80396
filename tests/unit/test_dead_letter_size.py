"""Dead letters near Pub/Sub's size limit: computed size, compact fallback, never an exception.

Runs against the in-memory twins and the service's own executor (the emulator tests in
tests/pubsub cover the real client; tests/unit/test_copies.py the other publish outcomes).
The size function is held equal to the protobuf serializer the client itself uses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.pubsub_v1 import types as gapic
from hypothesis import event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dispatcher.adapters.pubsub import (
    compact_dead_letter_attributes,
    dead_letter_attributes,
    fitting_dead_letter_attributes,
)
from dispatcher.adapters.pubsub_limits import (
    MAX_REQUEST_BYTES,
    attribute_problem,
    max_data_bytes,
    publish_problem,
    publish_request_bytes,
)
from dispatcher.adapters.pubsub_memory import MemoryDelivery
from dispatcher.adapters.pubsub_memory_publisher import MemoryPublisher, MemoryPubSub
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import PublishFailed
from dispatcher.service.executor import Published
from tests.unit.helpers import DEAD_LETTER_TOPIC, twin_executor

TOPIC = "projects/test-project/topics/orders"
DLQ = DEAD_LETTER_TOPIC
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


def delivered(size: int, attributes: dict[str, str]) -> tuple[MemoryPublisher, MemoryDelivery]:
    broker = MemoryPubSub()
    broker.topic(DLQ)
    subscription = broker.subscription("projects/test-project/subscriptions/o", topic=TOPIC)
    publisher = MemoryPublisher(broker)
    publisher.publish(TOPIC, b"\x7b" * size, **attributes).result()
    (delivery,) = subscription.pull()
    return publisher, delivery


def decision(detail: str, reason: Reason = Reason.BODY_TOO_LARGE) -> DeadLetter[MemoryDelivery]:
    """A dead letter with no delivery yet (the property gives it one)."""
    nobody: Any = None
    return DeadLetter((nobody,), reason, detail, "intake", "o-1")


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
    dead = replace(decision(detail), receipts=(delivery,))
    full = dead_letter_attributes(delivery, dead)
    compact = compact_dead_letter_attributes(delivery, dead)
    full_fits = publish_problem(DLQ, size, full) is None
    compact_fits = publish_problem(DLQ, size, compact) is None
    chosen = fitting_dead_letter_attributes(DLQ, delivery, dead)
    assert chosen == (full if full_fits else compact if compact_fits else None)
    event("full" if full_fits else "compact" if compact_fits else "too large")

    # What the service's executor does with it: stored and acked, or left to Pub/Sub.
    events: list[object] = []
    executor = twin_executor(post=events.append, publisher=publisher)
    executor.carry_out([dead])  # never raises
    (published,) = events
    assert isinstance(published, Published)
    outcome = executor.published(published)
    if chosen is None:
        assert isinstance(outcome, PublishFailed) and outcome.too_large
        assert delivery.settlements == ["nack"]  # Pub/Sub's own policy stores it intact
        assert publisher.messages(DLQ) == []
    else:
        assert outcome is None and delivery.settlements == ["ack"]
        (stored,) = publisher.messages(DLQ)
        assert stored.attributes == chosen and len(stored.data) == size


def test_the_three_outcomes_all_occur_near_the_limit() -> None:
    """Guards the property above against a generator that never reaches a branch."""
    dead = decision("x" * 1000)
    _, delivery = delivered(100, {})
    full = dead_letter_attributes(delivery, dead)
    compact = compact_dead_letter_attributes(delivery, dead)
    for size, expected in [
        (max_data_bytes(DLQ, full), full),
        (max_data_bytes(DLQ, full) + 1, compact),
        (max_data_bytes(DLQ, compact) + 1, None),
    ]:
        assert size <= max_data_bytes(TOPIC, {})  # the original itself fit
        chosen = fitting_dead_letter_attributes(DLQ, _sized(delivery, size), dead)
        assert chosen == expected


def _sized(delivery: MemoryDelivery, size: int) -> MemoryDelivery:
    delivery.data = b"\0" * size
    return delivery


def test_max_data_bytes_is_the_boundary() -> None:
    largest = max_data_bytes(TOPIC, {"k": "v"})
    assert publish_request_bytes(TOPIC, largest, {"k": "v"}) <= MAX_REQUEST_BYTES
    assert publish_request_bytes(TOPIC, largest + 1, {"k": "v"}) > MAX_REQUEST_BYTES
