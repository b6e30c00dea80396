"""class_topics routing: a saturated class neither starves the others nor burns attempts.

The large class is capped at one live Workflow that never finishes. Small orders published
after a flood of large ones must still all reach Workflows, and no delivery may be a
redelivery while the large orders wait (they wait in Pub/Sub or in leases kept alive).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from dispatcher.adapters.cluster_memory import LocalClusterState
from dispatcher.adapters.sinks import MemorySink
from dispatcher.service.assembly import Service
from tests.integration.class_topics_kit import create_topology, routed_settings

pytestmark = pytest.mark.pubsub


def test_saturated_large_class_does_not_stop_small_orders(pubsub_clients: Any) -> None:
    pub, sub, project = pubsub_clients.publisher, pubsub_clients.subscriber, pubsub_clients.project
    prefix = f"iso-{uuid.uuid4().hex[:8]}"
    settings = routed_settings(
        project,
        prefix,
        classes=lambda c: c.model_copy(
            update={"max_live_workflows": 1, "hold_budget": 3}
            if c.name == "large"
            else {"max_linger_seconds": 0.5}
        ),
    )
    intake_topic = create_topology(pubsub_clients, settings, prefix, max_attempts=5)
    sink = MemorySink()
    service = Service(
        settings, subscriber=sub, publisher=pub, sink=sink, cluster=LocalClusterState()
    )
    service.start()
    try:

        def publish(order_id: str, size: int) -> None:
            body = {"order_id": order_id, "input": {"uri": "gs://x", "size_bytes": size}}
            pub.publish(intake_topic, json.dumps(body).encode()).result(30)

        for i in range(40):
            publish(f"large-{i}", 10**12)
        for i in range(30):
            publish(f"small-{i}", 1000)

        def classes_created() -> dict[str, set[str]]:
            seen: dict[str, set[str]] = {}
            for body in list(sink.bodies.values()):
                ids = json.loads(body["metadata"]["annotations"]["burst-dispatcher.io/order-ids"])
                seen.setdefault(
                    body["metadata"]["labels"]["burst-dispatcher.io/size-class"], set()
                ).update(ids)
            return seen

        deadline = time.monotonic() + 90
        while len(classes_created().get("small", set())) < 30:
            assert time.monotonic() < deadline, f"small orders starved: {classes_created()}"
            time.sleep(0.1)
        # keep the large class saturated past the 10 s ack deadline: leases must be extended
        held_since = time.monotonic()
        while time.monotonic() - held_since < 15:
            time.sleep(0.5)
        assert len(classes_created().get("large", set())) == 1
        assert service.runner.engine.held_orders()["large"] <= 3
        redeliveries = service.metrics.redeliveries._value.get()
        assert redeliveries == 0, f"{redeliveries} redeliveries while held back"
    finally:
        service.stop(grace=20)
