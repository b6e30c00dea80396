"""Pub/Sub intake and dead-lettering, on the official ``google-cloud-pubsub`` client.

The subscriber callback does as little as possible (it runs on the client's threads and its
cost is paid per message): it hands the message to the runner's inbox. Dead letters carry the
original data and attributes plus the ``dlq_*`` attributes of the contract, and the original
is acked only once the dead letter is stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError

from dispatcher import __version__
from dispatcher.config import PubSubSettings
from dispatcher.core.decisions import DeadLetter

MAX_ATTRIBUTE_BYTES = 1024
#: Pub/Sub refuses a publish request larger than this (the client checks before sending).
MAX_PUBLISH_REQUEST_BYTES = 10 * 1000 * 1000
#: What a dead letter keeps when the full set of attributes would not fit.
COMPACT_KEYS = ("dlq_reason", "dlq_stage", "original_message_id", "order_id")


class Delivery(Protocol):
    """The part of a Pub/Sub message the dispatcher uses (the SDK's Message fits)."""

    data: bytes
    attributes: Any
    message_id: str
    publish_time: Any
    delivery_attempt: int | None

    def ack(self) -> None: ...

    def nack(self) -> None: ...


def flow_control(
    settings: PubSubSettings, max_messages: int | None = None
) -> pubsub_v1.types.FlowControl:
    return pubsub_v1.types.FlowControl(
        max_messages=max_messages or settings.max_messages,
        max_bytes=settings.max_bytes,
        max_lease_duration=settings.max_lease_seconds,
    )


def subscribe(
    subscriber: pubsub_v1.SubscriberClient,
    settings: PubSubSettings,
    on_message: Callable[[Delivery], None],
    *,
    subscription: str | None = None,
    max_messages: int | None = None,
) -> pubsub_v1.subscriber.futures.StreamingPullFuture:
    """Open one streaming pull; ``on_message`` must be cheap (it runs per message)."""
    return subscriber.subscribe(
        subscription or settings.subscription_path(),
        callback=on_message,
        flow_control=flow_control(settings, max_messages),
    )


def truncate_utf8(text: str, limit: int = MAX_ATTRIBUTE_BYTES) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode("utf-8", errors="ignore") + "..."


def dead_letter_attributes(delivery: Delivery, decision: DeadLetter[Any]) -> dict[str, str]:
    attributes = original_attributes(delivery)
    publish_time = delivery.publish_time
    attributes.update(
        {
            "dlq_reason": decision.reason.value,
            "dlq_detail": truncate_utf8(decision.detail),
            "dlq_stage": decision.stage,
            "original_message_id": str(delivery.message_id),
            "original_publish_time": publish_time.isoformat() if publish_time else "",
            "dispatcher_version": __version__,
        }
    )
    if decision.order_id is not None and "order_id" not in attributes:
        attributes["order_id"] = truncate_utf8(decision.order_id)
    return attributes


def is_too_large(error: BaseException) -> bool:
    """The client refused a message for its size (raised before anything was sent)."""
    return isinstance(error, MessageTooLargeError)


def request_bytes(topic: str, data: bytes, attributes: dict[str, str]) -> int:
    """The size of the publish request Pub/Sub would receive for this one message."""
    message = pubsub_v1.types.PubsubMessage(data=data, attributes=attributes)
    return int(pubsub_v1.types.PublishRequest(topic=topic, messages=[message])._pb.ByteSize())


def fit_attributes(topic: str, data: bytes, attributes: dict[str, str]) -> dict[str, str] | None:
    """``attributes`` if the message fits Pub/Sub's limit, else a compact set, else None.

    The data is never cut: a dead letter is the original order. The compact set keeps the
    reason, stage and ids (the detail is in the log line); None means not even that fits.
    """
    if request_bytes(topic, data, attributes) <= MAX_PUBLISH_REQUEST_BYTES:
        return attributes
    compact = {k: attributes[k] for k in COMPACT_KEYS if k in attributes}
    compact["dlq_detail"] = "too large for the full dead-letter attributes; see the logs"
    if request_bytes(topic, data, compact) <= MAX_PUBLISH_REQUEST_BYTES:
        return compact
    return None


Settled = Callable[[bool, BaseException | None], None]


def publish_then_settle(
    publisher: pubsub_v1.PublisherClient,
    *,
    topic: str,
    delivery: Delivery,
    attributes: dict[str, str],
    on_done: Settled | None = None,
) -> Future[str]:
    """Publish ``delivery``'s data elsewhere; ack it once stored, else give it back (nack).

    Pub/Sub's own dead-letter policy stays the last resort if publishing keeps failing.
    """
    future: Future[str] = publisher.publish(topic, delivery.data, **attributes)

    def settle(done: Future[str]) -> None:
        error = done.exception()
        if error is None:
            delivery.ack()
        else:
            delivery.nack()
        if on_done is not None:
            on_done(error is None, error)

    future.add_done_callback(settle)
    return future


class DeadLetterPublisher:
    """Publishes a rejected delivery to the dead-letter topic, then acks it (or nacks)."""

    def __init__(self, publisher: pubsub_v1.PublisherClient, topic_path: str) -> None:
        self._publisher = publisher
        self._topic = topic_path

    def publish(
        self, delivery: Delivery, decision: DeadLetter[Any], on_done: Settled | None = None
    ) -> Future[str]:
        return publish_then_settle(
            self._publisher,
            topic=self._topic,
            delivery=delivery,
            attributes=dead_letter_attributes(delivery, decision),
            on_done=on_done,
        )


def original_attributes(delivery: Delivery) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(delivery.attributes or {}).items()}


class Republisher:
    """Moves a delivery to another topic (routing to a class topic, or re-parking)."""

    def __init__(
        self, publisher: pubsub_v1.PublisherClient, topic_for: Callable[[str], str]
    ) -> None:
        self._publisher = publisher
        self._topic_for = topic_for

    def move(
        self,
        delivery: Delivery,
        *,
        size_class: str,
        extra: dict[str, str],
        on_done: Settled | None = None,
    ) -> Future[str]:
        attributes = original_attributes(delivery)
        attributes.update(extra)
        attributes["size_class"] = size_class
        return publish_then_settle(
            self._publisher,
            topic=self._topic_for(size_class),
            delivery=delivery,
            attributes=attributes,
            on_done=on_done,
        )


def ensure_topic(publisher: pubsub_v1.PublisherClient, topic_path: str) -> None:
    """Create a topic if it does not exist (for local runs and tests)."""
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(name=topic_path)


def ensure_subscription(
    subscriber: pubsub_v1.SubscriberClient, subscription_path: str, topic_path: str
) -> None:
    with contextlib.suppress(gexc.AlreadyExists):
        subscriber.create_subscription(name=subscription_path, topic=topic_path)
