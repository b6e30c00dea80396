"""Shared set-up of the class_topics tests: settings routed per class, and their topics.

Why: the isolation and pause tests need the same routed configuration and the same topology in
the emulator (intake topic and subscription, dead-letter topic, a topic and subscription per
class); only the classes' limits and whether class subscriptions carry a dead-letter policy
differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatcher.config import Settings, load_settings
from dispatcher.core.settings import SizeClass


def routed_settings(
    project: str, prefix: str, *, classes: Callable[[SizeClass], SizeClass]
) -> Settings:
    """The default configuration in class_topics routing, names under ``prefix``, a fast rate."""
    base = load_settings(environ={})
    return base.model_copy(
        update={
            "pubsub": base.pubsub.model_copy(
                update={
                    "project": project,
                    "subscription": f"{prefix}-intake",
                    "dead_letter_topic": f"{prefix}-dlq",
                    "routing": "class_topics",
                    "class_topic": prefix + "-{size_class}",
                    "class_subscription": prefix + "-{size_class}-sub",
                }
            ),
            "limits": base.limits.model_copy(update={"workflows_per_second": 1000, "burst": 1000}),
            "classes": [classes(c) for c in base.classes],
        }
    )


def create_topology(
    pubsub_clients: Any, settings: Settings, prefix: str, *, max_attempts: int | None = None
) -> str:
    """Create the intake, dead-letter and per-class topics and subscriptions; the intake topic.

    ``max_attempts``: give each class subscription a dead-letter policy, which makes Pub/Sub
    report delivery attempts (so a test can see an attempt spent).
    """
    pub, sub = pubsub_clients.publisher, pubsub_clients.subscriber
    ps = settings.pubsub
    intake_topic: str = pub.topic_path(pubsub_clients.project, f"{prefix}-orders")
    for topic in (intake_topic, ps.dead_letter_topic_path()):
        pub.create_topic(name=topic)
    sub.create_subscription(name=ps.subscription_path(), topic=intake_topic)
    for c in settings.classes:
        topic = ps.class_topic_path(c.name)
        pub.create_topic(name=topic)
        request: dict[str, Any] = {"name": ps.class_subscription_path(c.name), "topic": topic}
        if max_attempts is not None:
            pub.create_topic(name=topic + "-dl")
            request["ack_deadline_seconds"] = 10
            request["dead_letter_policy"] = {
                "dead_letter_topic": topic + "-dl",
                "max_delivery_attempts": max_attempts,
            }
        sub.create_subscription(request=request)
    return intake_topic
