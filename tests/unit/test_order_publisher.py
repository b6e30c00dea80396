"""OrderPublisher and the ``dispatcher publish`` loop over the in-memory Pub/Sub twin.

The real client and server are exercised in tests/integration/test_order_publisher.py; here the
twin lets failures, pending publishes and time be chosen by the test: a refused order is never
stored, a failure reaches the caller's future as PublishError, flush waits for what is in
flight, and the token bucket paces sends (checked on a fake clock over many rates).
"""

from __future__ import annotations

import json

import pytest
from google.api_core import exceptions as gexc
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.commands.progress import Meter
from dispatcher.commands.publish_run import publish_lines
from dispatcher.config import load_settings
from dispatcher.core.clock import FakeClock
from dispatcher.core.ratelimit import TokenBucket
from dispatcher.publish import (
    InvalidOrder,
    MemoryPublisher,
    OrderCheck,
    OrderPublisher,
    PublishError,
    Reason,
)

TOPIC = "projects/p/topics/orders"


def order(order_id: str) -> bytes:
    body = {"order_id": order_id, "input": {"uri": f"gs://b/{order_id}", "size_bytes": 5}}
    return json.dumps(body).encode()


def twin(*, resolve_later: bool = False) -> MemoryPublisher:
    client = MemoryPublisher(resolve_later=resolve_later)
    client.broker.topic(TOPIC)
    return client


def test_valid_orders_are_stored_as_sent_and_invalid_ones_not_at_all() -> None:
    client = twin()
    with OrderPublisher(TOPIC, client=client) as publisher:
        first = publisher.publish(order("u-1"))
        with pytest.raises(InvalidOrder) as caught:
            publisher.publish(b'{"order_id":"u-2"}')
        second = publisher.publish(
            {"order_id": "u-3", "input": {"uri": "gs://b/3", "size_bytes": 1}}
        )
    assert caught.value.reason is Reason.SCHEMA and caught.value.order_id == "u-2"
    stored = client.messages(TOPIC)
    assert [m.message_id for m in stored] == [first.result(), second.result()]
    assert stored[0].data == order("u-1") and stored[0].attributes == {"order_id": "u-1"}
    assert stored[1].data == b'{"order_id":"u-3","input":{"uri":"gs://b/3","size_bytes":1}}'


def test_a_failure_reaches_the_future_and_flush_waits_for_pending() -> None:
    client = twin(resolve_later=True)
    publisher = OrderPublisher(TOPIC, client=client)
    client.fail_next(1, gexc.NotFound("topic gone"))
    failing, fine = publisher.publish(order("v-1")), publisher.publish(order("v-2"))
    with pytest.raises(TimeoutError):
        publisher.flush(timeout=0)
    client.complete_pending()
    publisher.flush(timeout=0)
    with pytest.raises(PublishError) as caught:
        failing.result(timeout=0)
    assert isinstance(caught.value.__cause__, gexc.NotFound) and caught.value.order_id == "v-1"
    assert fine.result(timeout=0) == client.messages(TOPIC)[0].message_id
    publisher.close()
    client.publish(TOPIC, b"x")  # a client passed in is the caller's: close() does not stop it


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(min_value=0.5, max_value=2000), count=st.integers(min_value=1, max_value=300))
def test_the_rate_is_never_exceeded_and_never_wasted(rate: float, count: int) -> None:
    clock = FakeClock()
    burst = max(1, int(rate / 10))  # as the command builds it
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    stamps: list[float] = []

    class Stamping(MemoryPublisher):
        def publish(self, topic: str, data: bytes, **attrs: str | bytes):  # type: ignore[no-untyped-def]
            stamps.append(clock())
            return super().publish(topic, data, **attrs)

    client = Stamping()
    client.broker.topic(TOPIC)
    publisher = OrderPublisher(TOPIC, client=client)
    tally = publish_lines(
        (order(f"w-{i}") for i in range(count)),
        check=publisher.check,
        publisher=publisher,
        bucket=bucket,
        meter=Meter("publishing", total=None, live=False, every=1e9),
        sleep=clock.advance,
    )
    assert tally.published == count and len(stamps) == count
    for i in range(count):
        for j in range(i + 1, min(count, i + 3 * burst + 5)):
            assert j - i + 1 <= burst + rate * (stamps[j] - stamps[i]) + 1e-6
    slack = count * 1e-6  # the loop waits at least a microsecond per wait
    assert stamps[-1] - stamps[0] <= max(0, count - burst) / rate + slack + 1e-6


def test_a_dry_run_check_needs_no_client() -> None:
    check = OrderCheck(load_settings())
    assert check(order("x-1")).size_class == "small"
    with pytest.raises(InvalidOrder):
        check(b"[]")
