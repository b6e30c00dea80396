"""Pausing and resuming a class live, on the real emulator in ``class_topics`` routing.

The large class holds three orders (cap 0) when it is paused through the service's reload
path (``Service.apply``, what a changed ConfigMap reaches). Its stream closes, the three are
re-parked onto its topic, and they wait there, in Pub/Sub, while small orders published after
the pause still become Workflows. Resuming it (cap raised too) creates the three.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from dispatcher.adapters.cluster_memory import LocalClusterState
from dispatcher.adapters.sinks import MemorySink
from dispatcher.config import Settings
from dispatcher.service.assembly import Service
from tests.integration.class_topics_kit import create_topology, routed_settings
from tests.polling import poll

pytestmark = pytest.mark.pubsub


def with_large(settings: Settings, **update: Any) -> Settings:
    classes = [c.model_copy(update=update) if c.name == "large" else c for c in settings.classes]
    return settings.model_copy(update={"classes": classes})


def created(sink: MemorySink, size_class: str) -> set[str]:
    ids: set[str] = set()
    for body in list(sink.bodies.values()):
        if body["metadata"]["labels"]["burst-dispatcher.io/size-class"] == size_class:
            ids.update(json.loads(body["metadata"]["annotations"]["burst-dispatcher.io/order-ids"]))
    return ids


def test_a_paused_class_waits_in_pubsub_while_others_go_and_resume_creates_it(
    pubsub_clients: Any,
) -> None:
    pub, sub, project = pubsub_clients.publisher, pubsub_clients.subscriber, pubsub_clients.project
    prefix = f"pause-{uuid.uuid4().hex[:8]}"
    settings = routed_settings(
        project, prefix, classes=lambda c: c.model_copy(update={"max_linger_seconds": 0.2})
    )
    settings = with_large(settings, max_live_workflows=0)
    ps = settings.pubsub
    intake_topic = create_topology(pubsub_clients, settings, prefix)
    sink = MemorySink()
    service = Service(
        settings, subscriber=sub, publisher=pub, sink=sink, cluster=LocalClusterState()
    )
    service.start()
    engine = service.runner.engine

    def publish(order_id: str, size: int) -> None:
        body = {"order_id": order_id, "input": {"uri": "gs://x", "size_bytes": size}}
        pub.publish(intake_topic, json.dumps(body).encode()).result(30)

    try:
        for i in range(3):
            publish(f"large-{i}", 10**12)
        poll(lambda: engine.held_orders()["large"] == 3, 60, "large orders held at cap 0")

        paused = with_large(settings, state="paused")
        assert service.apply(paused)
        poll(lambda: engine.held_orders()["large"] == 0, 60, "held large orders re-parked")
        # Their originals came on the closed stream: acked by Acknowledge calls, without error.
        executor = service.runner.executor
        poll(lambda: getattr(executor.late_acks, "calls", 0) >= 1, 60, "originals acked")
        assert service.metrics.decision_errors._value.get() == 0
        assert service.healthy() == (True, "ok")  # a stream closed on purpose is no failure
        for i in range(5):
            publish(f"small-{i}", 1000)
        poll(
            lambda: len(created(sink, "small")) == 5,
            60,
            "small orders created while large is paused",
        )
        assert created(sink, "large") == set() and engine.last_hold["large"] in (None, "paused")

        # The backlog is in Pub/Sub: the three re-parked copies wait on the large subscription.
        waiting: dict[str, str] = {}

        def pull_backlog() -> bool:
            found = sub.pull(
                subscription=ps.class_subscription_path("large"), max_messages=10, timeout=5
            )
            for m in found.received_messages:
                waiting[m.message.attributes["order_id"]] = m.ack_id
            return len(waiting) >= 3

        poll(pull_backlog, 60, "the large backlog in Pub/Sub")
        assert sorted(waiting) == ["large-0", "large-1", "large-2"]
        sub.modify_ack_deadline(
            subscription=ps.class_subscription_path("large"),
            ack_ids=list(waiting.values()),
            ack_deadline_seconds=0,
        )
        assert engine.held_orders()["large"] == 0 and created(sink, "large") == set()

        assert service.apply(with_large(paused, state="active", max_live_workflows=5))
        poll(lambda: len(created(sink, "large")) == 3, 60, "resume creates the large orders")
        assert created(sink, "large") == {"large-0", "large-1", "large-2"}
    finally:
        service.stop(grace=20)
