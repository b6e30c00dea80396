"""Replay with the way out broken: a dead letter is acked only after its copy is stored.

A gRPC fault proxy (tests/faults/pubsub_proxy.py) sits between ``dispatcher dead-letter
replay`` and the real emulator and breaks only the publishes to the orders topic; pulls and
acks of the dead-letter subscription pass untouched, and the proxy counts every ack.

- Publishes swallowed, then the process SIGKILLed: not one dead letter was acked, and every
  one comes back from the dead-letter subscription (none reached the orders topic).
- Publishes stored but answered with an error (the ambiguous publish) for a while: the client
  retries, every order arrives, duplicates stay within what was in flight, and the dead-letter
  subscription ends empty.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.faults.pubsub_proxy import Faults, PubSubFaultProxy
from tests.integration.replay_kit import (
    Arrivals,
    publish_dead_letters,
    replay_args,
    start_replay,
)
from tests.polling import poll
from tests.pubsub.plugin import drain

pytestmark = [
    pytest.mark.pubsub,
    pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True),
]

LEASE = 10  # seconds: what the killed run held comes back this long after the kill


def test_swallowed_publishes_then_sigkill_ack_nothing_and_lose_nothing(
    pubsub_emulator: Any, pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    count = 300
    dlq = make_topic_subscription(prefix="dlq")
    orders = make_topic_subscription(prefix="orders")
    publish_dead_letters(pubsub_clients.publisher, dlq.topic, count=count, prefix="held")
    faults = Faults(topic=orders.topic, mode="hold")
    with PubSubFaultProxy(pubsub_emulator.host, faults) as proxy:
        replay = start_replay(
            replay_args(
                dead_letters=dlq.subscription,
                topic=orders.topic,
                extra=["--lease-seconds", str(LEASE)],
            ),
            log=tmp_path / "replay.log",
            env={"PUBSUB_EMULATOR_HOST": proxy.host},
        )
        try:
            poll(lambda: faults.publishes["hold"] >= 1, 60, "the replay's first publish")
        finally:
            replay.send_signal(signal.SIGKILL)
            replay.wait(timeout=30)
        assert faults.acked[dlq.subscription] == 0, "dead letters acked before their copy"
    # Nothing lost: after the lease every dead letter is back; nothing reached the orders topic.
    back = drain(pubsub_clients, dlq.subscription, expected=count, timeout=LEASE + 60)
    assert len(back) == count
    assert drain(pubsub_clients, orders.subscription, expected=0, timeout=5) == {}


def test_ambiguous_publishes_are_retried_and_every_order_arrives(
    pubsub_emulator: Any, pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    count, lost = 400, 3
    dlq = make_topic_subscription(prefix="dlq")
    orders = make_topic_subscription(prefix="orders")
    order_ids = publish_dead_letters(pubsub_clients.publisher, dlq.topic, count=count, prefix="amb")
    arrivals = Arrivals(pubsub_clients.subscriber, orders.subscription)
    faults = Faults(topic=orders.topic, mode="lose_response", limit=lost)
    with PubSubFaultProxy(pubsub_emulator.host, faults) as proxy:
        replay = start_replay(
            replay_args(
                dead_letters=dlq.subscription,
                topic=orders.topic,
                extra=["--idle-timeout", "3", "-o", "json"],
            ),
            log=tmp_path / "replay.log",
            env={"PUBSUB_EMULATOR_HOST": proxy.host},
        )
        stdout, _ = replay.communicate(timeout=300)
    assert replay.returncode == 0, (tmp_path / "replay.log").read_text()[-2000:]
    assert faults.publishes["lose_response"] == lost
    summary = json.loads(stdout)
    assert summary["replayed"] == count and summary["failed"] == 0
    assert faults.acked[dlq.subscription] == count
    assert arrivals.pull_until(lambda: set(arrivals.by_order) >= set(order_ids), timeout=60)
    # Each lost answer hid a stored batch that the client sent again: those copies, no more.
    duplicated = arrivals.messages - count
    assert 1 <= duplicated <= lost * 100, duplicated
    assert drain(pubsub_clients, dlq.subscription, expected=0, timeout=5) == {}
