"""Sanity tests of the Pub/Sub test servers, driven by the real google-cloud-pubsub client.

Why: every dispatcher test trusts these servers to behave like Pub/Sub. When the fixture is
parametrized over pstest and the fast server, each test here runs against both, which is what
holds the fast server to the reference semantics (redelivery, nack, dead-lettering, leases).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.polling import poll
from tests.pubsub.plugin import MakeTopicSubscription, PubSubClients, PubSubEmulator

pytestmark = [
    pytest.mark.pubsub,
    # Pull(return_immediately=True) is deprecated but is the prompt way to check "nothing there".
    pytest.mark.filterwarnings("ignore:The return_immediately flag:DeprecationWarning"),
]


@dataclass
class Received:
    """Thread-safe record of what a streaming-pull callback saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[Any] = field(default_factory=list)
    deliveries: Counter[str] = field(default_factory=Counter)
    last_at: float = 0.0

    def add(self, message: Any) -> int:
        with self.lock:
            self.messages.append(message)
            self.deliveries[message.message_id] += 1
            self.last_at = time.monotonic()
            return self.deliveries[message.message_id]

    def ids(self) -> set[str]:
        with self.lock:
            return set(self.deliveries)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@contextlib.contextmanager
def streaming_pull(
    clients: PubSubClients, subscription: str, callback: Callable[[Any], None]
) -> Iterator[None]:
    """Run a streaming-pull subscriber for the duration of the block."""
    from google.cloud import pubsub_v1

    future = clients.subscriber.subscribe(
        subscription, callback, flow_control=pubsub_v1.types.FlowControl(max_messages=1000)
    )
    try:
        yield
    finally:
        future.cancel()
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def publish_all(
    clients: PubSubClients, topic: str, payloads: list[tuple[bytes, dict[str, str]]]
) -> list[str]:
    """Publish payloads and return their message ids (in publish order)."""
    futures = [clients.publisher.publish(topic, data, **attrs) for data, attrs in payloads]
    return [f.result(timeout=30) for f in futures]


def sync_pull(clients: PubSubClients, subscription: str, max_messages: int = 100) -> list[Any]:
    """One synchronous Pull that returns promptly when nothing is available."""
    response = clients.subscriber.pull(
        request={
            "subscription": subscription,
            "max_messages": max_messages,
            "return_immediately": True,
        },
        timeout=10,
    )
    return list(response.received_messages)


def test_emulator_fixture_sets_env(pubsub_emulator: PubSubEmulator) -> None:
    import os

    assert os.environ["PUBSUB_EMULATOR_HOST"] == pubsub_emulator.host
    assert pubsub_emulator.kind in {"pstest", "fast", "external", "docker"}


def test_publish_pull_ack_nothing_redelivered(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription(ack_deadline_seconds=10)
    n = 200
    ids = publish_all(pubsub_clients, names.topic, [(b"m%d" % i, {}) for i in range(n)])
    assert len(set(ids)) == n
    got = Received()

    def callback(message: Any) -> None:
        got.add(message)
        message.ack()

    with streaming_pull(pubsub_clients, names.subscription, callback):
        poll(lambda: got.ids() == set(ids), 60, f"{n} messages")
        # A lost ack would show up as a redelivery once the 10 s lease runs out.
        quiet_until = got.last_at + 12
        while time.monotonic() < quiet_until:
            assert got.count() == n, "an acked message was delivered again"
            time.sleep(0.1)
    assert got.count() == n
    assert {m.data for m in got.messages} == {b"m%d" % i for i in range(n)}


def test_nack_redelivers(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription()
    ids = publish_all(pubsub_clients, names.topic, [(b"n%d" % i, {}) for i in range(5)])
    got = Received()

    def callback(message: Any) -> None:
        if got.add(message) == 1:
            message.nack()
        else:
            message.ack()

    with streaming_pull(pubsub_clients, names.subscription, callback):
        poll(lambda: all(got.deliveries[i] >= 2 for i in ids), 30, "every message redelivered")
    data_by_id: dict[str, set[bytes]] = {}
    for m in got.messages:
        data_by_id.setdefault(m.message_id, set()).add(m.data)
    assert all(len(v) == 1 for v in data_by_id.values()), "redelivery changed the payload"


def test_content_and_attributes_preserved(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription()
    payloads: list[tuple[bytes, dict[str, str]]] = [
        (b'{"order_id": "o-1"}', {"order_id": "o-1", "source": "upstream"}),
        (bytes(range(256)), {"kind": "binary"}),
        ("ünïcödé ✓".encode(), {"ключ": "значение", "empty": ""}),
        (b"x" * 100_000, {}),
        (b"", {"only": "attributes"}),
    ]
    before = datetime.now(UTC) - timedelta(seconds=5)
    ids = publish_all(pubsub_clients, names.topic, payloads)
    after = datetime.now(UTC) + timedelta(seconds=5)
    got = Received()

    def callback(message: Any) -> None:
        got.add(message)
        message.ack()

    with streaming_pull(pubsub_clients, names.subscription, callback):
        poll(lambda: got.ids() == set(ids), 30, "all messages")

    received = sorted((m.data, dict(m.attributes)) for m in got.messages)
    assert received == sorted(payloads)
    for m in got.messages:
        assert m.message_id
        assert before <= m.publish_time <= after
        assert m.delivery_attempt is None  # no dead-letter policy: attempts not reported


def test_pull_ack(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription()
    ids = publish_all(pubsub_clients, names.topic, [(b"p%d" % i, {"i": str(i)}) for i in range(10)])
    seen: dict[str, Any] = {}

    def pulled_all() -> bool:
        for rm in sync_pull(pubsub_clients, names.subscription):
            seen[rm.message.message_id] = rm
        return set(seen) == set(ids)

    poll(pulled_all, 30, "10 messages by Pull")
    pubsub_clients.subscriber.acknowledge(
        request={"subscription": names.subscription, "ack_ids": [rm.ack_id for rm in seen.values()]}
    )
    for rm in seen.values():
        assert rm.message.attributes["i"] == rm.message.data.decode()[1:]
    # Acked messages are gone even once their lease could have run out: nack-all is a no-op.
    pubsub_clients.subscriber.modify_ack_deadline(
        request={
            "subscription": names.subscription,
            "ack_ids": [rm.ack_id for rm in seen.values()],
            "ack_deadline_seconds": 0,
        }
    )
    assert sync_pull(pubsub_clients, names.subscription) == []


def test_messages_before_subscription_not_delivered(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    first = make_topic_subscription()
    late_sub = pubsub_clients.subscriber.subscription_path(
        pubsub_clients.project, first.subscription.rsplit("/", 1)[1] + "-late"
    )
    publish_all(pubsub_clients, first.topic, [(b"early", {})])
    pubsub_clients.subscriber.create_subscription(request={"name": late_sub, "topic": first.topic})
    try:
        (late_id,) = publish_all(pubsub_clients, first.topic, [(b"late", {})])
        seen: list[Any] = []

        def got_late() -> bool:
            seen.extend(sync_pull(pubsub_clients, late_sub))
            return any(rm.message.message_id == late_id for rm in seen)

        poll(got_late, 30, "the message published after the subscription")
        # The early message is available on the first subscription, never on the late one.
        poll(
            lambda: any(
                rm.message.data == b"early" for rm in sync_pull(pubsub_clients, first.subscription)
            ),
            30,
            "the early message on the first subscription",
        )
        seen.extend(sync_pull(pubsub_clients, late_sub))
        assert [rm.message.data for rm in seen] == [b"late"]
    finally:
        pubsub_clients.subscriber.delete_subscription(request={"subscription": late_sub})


def test_lease_expiry_and_extension(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription(max_delivery_attempts=10)
    ids = publish_all(pubsub_clients, names.topic, [(b"short", {}), (b"extended", {})])
    by_data: dict[bytes, Any] = {}

    def pulled_both() -> bool:
        for rm in sync_pull(pubsub_clients, names.subscription):
            by_data[rm.message.data] = rm
        return len(by_data) == 2

    poll(pulled_both, 30, "both messages")
    assert {rm.message.message_id for rm in by_data.values()} == set(ids)
    assert {rm.delivery_attempt for rm in by_data.values()} == {1}
    sub = pubsub_clients.subscriber
    short, extended = by_data[b"short"], by_data[b"extended"]
    sub.modify_ack_deadline(
        request={
            "subscription": names.subscription,
            "ack_ids": [short.ack_id, extended.ack_id],
            "ack_deadline_seconds": 1,
        }
    )
    sub.modify_ack_deadline(
        request={
            "subscription": names.subscription,
            "ack_ids": [extended.ack_id],
            "ack_deadline_seconds": 60,
        }
    )
    redelivered: list[Any] = []

    def short_back() -> bool:
        redelivered.extend(sync_pull(pubsub_clients, names.subscription))
        return any(rm.message.data == b"short" for rm in redelivered)

    poll(short_back, 30, "the message whose lease expired")
    expired_at = time.monotonic()
    while time.monotonic() < expired_at + 1.5:
        redelivered.extend(sync_pull(pubsub_clients, names.subscription))
        time.sleep(0.05)
    assert [rm.message.data for rm in redelivered] == [b"short"], "extended lease not honoured"
    assert redelivered[0].delivery_attempt == 2
    assert redelivered[0].message.message_id == short.message.message_id
    # Clean up: both leases are ours.
    sub.acknowledge(
        request={"subscription": names.subscription, "ack_ids": [redelivered[0].ack_id]}
    )
    sub.acknowledge(request={"subscription": names.subscription, "ack_ids": [extended.ack_id]})


def test_dead_letter_after_max_delivery_attempts(
    pubsub_clients: PubSubClients, make_topic_subscription: MakeTopicSubscription
) -> None:
    names = make_topic_subscription(max_delivery_attempts=5)
    assert names.dead_letter_subscription is not None
    (msg_id,) = publish_all(pubsub_clients, names.topic, [(b"poison", {"order_id": "o-9"})])
    attempts: list[int] = []
    lock = threading.Lock()

    def always_nack(message: Any) -> None:
        with lock:
            attempts.append(message.delivery_attempt)
        message.nack()

    dead: list[Any] = []

    def dead_arrived() -> bool:
        dead.extend(sync_pull(pubsub_clients, names.dead_letter_subscription or ""))
        return bool(dead)

    with streaming_pull(pubsub_clients, names.subscription, always_nack):
        poll(dead_arrived, 60, "the message on the dead-letter topic")
    assert sorted(attempts) == [1, 2, 3, 4, 5]
    (rm,) = dead
    assert rm.message.data == b"poison"
    assert rm.message.attributes["order_id"] == "o-9"
    assert msg_id
    # Forwarded, so it is gone from the original subscription.
    assert sync_pull(pubsub_clients, names.subscription) == []
