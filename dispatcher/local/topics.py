"""The dev environment's topics and subscriptions, created in the local Pub/Sub emulator.

Why: on GCP they are Config Connector objects (k8s/infra); the emulator knows nothing of them.
Reading the rendered infra overlay instead of naming topics here keeps the local stack on the
same names, ack deadlines and dead-letter policy as the environment it imitates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from google.api_core import exceptions

from dispatcher.adapters.pubsub_clients import EMULATOR_ENV, publisher_client, subscriber_client

# The subscription `dispatcher run` reads; its topic is where orders are published.
ORDERS_SUBSCRIPTION = "orders-dispatcher"


@contextlib.contextmanager
def emulator(host: str) -> Iterator[None]:
    """PUBSUB_EMULATOR_HOST set for the clients made inside the block."""
    previous = os.environ.get(EMULATOR_ENV)
    os.environ[EMULATOR_ENV] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(EMULATOR_ENV, None)
        else:
            os.environ[EMULATOR_ENV] = previous


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("resourceID") or obj["metadata"]["name"])


def create(infra: list[dict[str, Any]], *, project: str, host: str) -> str:
    """Create every PubSubTopic and PubSubSubscription (existing ones kept); the orders topic."""
    topics = {o["metadata"]["name"]: _name(o) for o in infra if o["kind"] == "PubSubTopic"}
    subscriptions = [o for o in infra if o["kind"] == "PubSubSubscription"]
    orders_topic = ""
    with emulator(host):
        publisher, subscriber = publisher_client(), subscriber_client()
        try:
            for topic in topics.values():
                with contextlib.suppress(exceptions.AlreadyExists):
                    publisher.create_topic(name=publisher.topic_path(project, topic))
            for sub in subscriptions:
                spec = sub["spec"]
                topic = publisher.topic_path(project, topics[spec["topicRef"]["name"]])
                request: dict[str, Any] = {
                    "name": subscriber.subscription_path(project, _name(sub)),
                    "topic": topic,
                    "ack_deadline_seconds": int(spec.get("ackDeadlineSeconds", 10)),
                }
                policy = spec.get("deadLetterPolicy")
                if policy:
                    dead = topics[policy["deadLetterTopicRef"]["name"]]
                    request["dead_letter_policy"] = {
                        "dead_letter_topic": publisher.topic_path(project, dead),
                        "max_delivery_attempts": int(policy.get("maxDeliveryAttempts", 5)),
                    }
                with contextlib.suppress(exceptions.AlreadyExists):
                    subscriber.create_subscription(request=request)
                if _name(sub) == ORDERS_SUBSCRIPTION:
                    orders_topic = topic
        finally:
            publisher.stop()
            subscriber.close()
    if not orders_topic:
        raise RuntimeError(f"no subscription {ORDERS_SUBSCRIPTION} in the infra overlay")
    return orders_topic
