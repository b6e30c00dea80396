"""Pub/Sub intake against a real server with the real client: nothing lost, nothing doubled.

1,000 messages mix valid orders, malformed ones and redelivered duplicates. Every valid order
must reach a Workflow body exactly once, every malformed one must be on the dead-letter topic
with its reason and original data, and nothing may be left unacked.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from dispatcher.adapters.cluster_memory import LocalClusterState
from dispatcher.adapters.sinks import MemorySink
from dispatcher.config import load_settings
from dispatcher.service.assembly import Service
from tests.polling import poll
from tests.pubsub.plugin import drain

pytestmark = pytest.mark.pubsub


def swarm() -> tuple[list[tuple[bytes, dict[str, str]]], set[str], dict[bytes, str]]:
    messages: list[tuple[bytes, dict[str, str]]] = []
    valid: set[str] = set()
    invalid: dict[bytes, str] = {}
    sizes = (1_000, 50_000_000, 2_000_000_000, 10**12)
    for i in range(800):
        body = json.dumps(
            {"order_id": f"o-{i:04d}", "input": {"uri": f"gs://in/{i}", "size_bytes": sizes[i % 4]}}
        ).encode()
        messages.append((body, {"order_id": f"o-{i:04d}"} if i % 3 == 0 else {}))
        valid.add(f"o-{i:04d}")
    bad = [
        (b"{not json", "invalid_json"),
        (b"[1,2,3]", "not_an_object"),
        (b'{"order_id":"","input":{"uri":"gs://u/k","size_bytes":1}}', "schema"),
        (b'{"order_id":"x","input":{"uri":"gs://u/k","size_bytes":true}}', "schema"),
        (
            b'{"order_id":"x","input":{"uri":"gs://u/k","size_bytes":1},"schema_version":9}',
            "unsupported_schema_version",
        ),
    ]
    for i in range(100):
        data, reason = bad[i % len(bad)]
        data = data.replace(b'"x"', f'"bad-{i}"'.encode())
        data = data if i < 5 else data + b" " * (i // 5)  # unique bodies, same meaning
        messages.append((data, {"case": str(i)}))
        invalid[data] = reason
    for i in range(100):
        messages.append(messages[(i * 7) % 800])
    return messages, valid, invalid


def test_thousand_orders_exactly_once(pubsub_clients: Any, make_topic_subscription: Any) -> None:
    orders = make_topic_subscription(prefix="orders")
    dlq = make_topic_subscription(prefix="dlq")
    base = load_settings(environ={})
    settings = base.model_copy(
        update={
            "pubsub": base.pubsub.model_copy(
                update={
                    "project": pubsub_clients.project,
                    "subscription": orders.subscription,
                    "dead_letter_topic": dlq.topic,
                }
            ),
            "limits": base.limits.model_copy(
                update={
                    "workflows_per_second": 10_000,
                    "burst": 10_000,
                    "max_workflow_objects": 100_000,
                }
            ),
            "classes": [
                c.model_copy(update={"max_live_workflows": 10_000, "max_linger_seconds": 0.5})
                for c in base.classes
            ],
        }
    )
    sink = MemorySink()
    service = Service(
        settings,
        subscriber=pubsub_clients.subscriber,
        publisher=pubsub_clients.publisher,
        sink=sink,
        cluster=LocalClusterState(),
    )
    messages, valid, invalid = swarm()
    service.start()
    try:
        futures = [
            pubsub_clients.publisher.publish(orders.topic, data, **attrs)
            for data, attrs in messages
        ]
        for future in futures:
            future.result(timeout=60)

        def submitted() -> list[str]:
            return [
                oid
                for body in list(sink.bodies.values())
                for oid in json.loads(
                    body["metadata"]["annotations"]["burst-dispatcher.io/order-ids"]
                )
            ]

        poll(lambda: set(submitted()) >= valid, 180, "every valid order in a Workflow")

        dead = {
            message.data: dict(message.attributes)
            for message in drain(
                pubsub_clients, dlq.subscription, expected=len(invalid), timeout=120
            ).values()
        }
    finally:
        assert service.stop(grace=30)

    counts = Counter(submitted())
    assert set(counts) == valid
    assert max(counts.values()) == 1, "an order reached two Workflows"
    assert set(dead) == set(invalid)
    for data, attributes in dead.items():
        assert attributes["dlq_reason"] == invalid[data]
        assert attributes["dlq_detail"] and attributes["dlq_stage"] == "validate"
        assert attributes["original_message_id"] and attributes["original_publish_time"]
        assert attributes["dispatcher_version"]
        assert "case" in attributes  # original attributes travel along
    for body in sink.bodies.values():
        ids = json.loads(body["metadata"]["annotations"]["burst-dispatcher.io/message-ids"])
        assert len(ids) >= 1

    # Nothing left unacked: anything not acked would come back once its deadline (10 s) ran out.
    leftovers: list[Any] = []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        response = pubsub_clients.subscriber.pull(
            subscription=orders.subscription, max_messages=100, timeout=3
        )
        leftovers.extend(response.received_messages)
        if leftovers:
            break
    assert leftovers == [], f"{len(leftovers)} messages were left unacked"
