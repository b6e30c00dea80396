"""Pub/Sub intake and dead-lettering, on the official ``google-cloud-pubsub`` client.

The subscriber callback does as little as possible (it runs on the client's threads and its
cost is paid per message): it hands the message to the runner's inbox. Dead letters carry the
original data and attributes plus the ``dlq_*`` attributes of the contract, and the original
is acked only once the dead letter is stored.

Publishing here never raises. Every outcome reaches the caller through ``on_done``:
stored (the delivery was acked), failed (nacked, so Pub/Sub redelivers it), or
:class:`TooLargeToPublish` (neither acked nor nacked). A message near Pub/Sub's 10 MB limit is
the reason for the last one: the ``dlq_*`` attributes can push an order that fit over the
limit, and the client would raise ``MessageTooLargeError`` on the caller's thread. So the size
is computed first; a dead letter that does not fit with every attribute falls back to a
compact set (the original attributes plus ``dlq_reason``, ``dlq_stage``,
``original_message_id`` and a short ``dlq_detail``). If even that does not fit, nothing is
published and ``on_done`` gets :class:`TooLargeToDeadLetter`: the caller leaves the message to
Pub/Sub's own dead-letter policy, which stores it intact, rather than store an altered copy
(a truncated body would be a lost order that looks like a kept one).
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
from dispatcher.adapters.pubsub_limits import (
    MAX_VALUE_BYTES,
    TooLargeToDeadLetter,
    TooLargeToPublish,
    first_that_fits,
    publish_problem,
)
from dispatcher.config import PubSubSettings
from dispatcher.core.decisions import DeadLetter

MAX_ATTRIBUTE_BYTES = MAX_VALUE_BYTES
#: ``dlq_detail`` in a compact dead letter: enough to read the reason, small at the limit.
COMPACT_DETAIL_BYTES = 120


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


def compact_dead_letter_attributes(delivery: Delivery, decision: DeadLetter[Any]) -> dict[str, str]:
    """The fallback set for a message near the size limit: what an operator needs to triage."""
    attributes = original_attributes(delivery)
    attributes.update(
        {
            "dlq_reason": decision.reason.value,
            "dlq_detail": truncate_utf8(decision.detail, COMPACT_DETAIL_BYTES),
            "dlq_stage": decision.stage,
            "original_message_id": str(delivery.message_id),
        }
    )
    return attributes


Settled = Callable[[bool, BaseException | None], None]


def fitting_dead_letter_attributes(
    topic: str, delivery: Delivery, decision: DeadLetter[Any]
) -> dict[str, str] | None:
    """The full attribute set if it fits, else the compact one if that fits, else None."""
    full = dead_letter_attributes(delivery, decision)
    length = len(delivery.data)
    if publish_problem(topic, length, full) is None:
        return full
    return first_that_fits(topic, length, [compact_dead_letter_attributes(delivery, decision)])


def is_too_large(error: BaseException) -> bool:
    """The message was refused for its size before anything was sent."""
    return isinstance(error, MessageTooLargeError | TooLargeToPublish)


class Publisher(Protocol):
    """What is used of ``pubsub_v1.PublisherClient`` (``MemoryPublisher`` fits too)."""

    def publish(self, topic: str, data: bytes, **attrs: str) -> Future[str]: ...


def _report(future: Future[str], on_done: Settled | None) -> Future[str]:
    if on_done is not None:
        future.add_done_callback(lambda done: on_done(False, done.exception()))
    return future


def refuse(error: BaseException, on_done: Settled | None) -> Future[str]:
    """A publish that did not happen: a failed future, reported through ``on_done``."""
    future: Future[str] = Future()
    future.set_exception(error)
    return _report(future, on_done)


def publish_then_settle(
    publisher: Publisher,
    *,
    topic: str,
    delivery: Delivery,
    attributes: dict[str, str],
    on_done: Settled | None = None,
    too_large: type[TooLargeToPublish] = TooLargeToPublish,
) -> Future[str]:
    """Publish ``delivery``'s data elsewhere; ack it once stored, else give it back (nack).

    Never raises. A message over Pub/Sub's limits is not published and the delivery is not
    settled: ``on_done(False, too_large(...))``. Any other failure, raised or reported by the
    future, nacks the delivery and reaches ``on_done``. Pub/Sub's own dead-letter policy stays
    the last resort if publishing keeps failing.
    """
    problem = publish_problem(topic, len(delivery.data), attributes)
    if problem is not None:
        return refuse(too_large(f"message {delivery.message_id}: {problem}"), on_done)
    try:
        future: Future[str] = publisher.publish(topic, delivery.data, **attributes)
    except MessageTooLargeError as exc:
        error = too_large(f"message {delivery.message_id}: {exc}")
        error.__cause__ = exc
        return refuse(error, on_done)
    except Exception as exc:  # noqa: BLE001 - every failure must reach on_done, none may escape
        delivery.nack()
        return refuse(exc, on_done)

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
    """Publishes a rejected delivery to the dead-letter topic, then acks it (or nacks).

    Never raises; see the module docstring for what happens near the size limit.
    """

    def __init__(self, publisher: Publisher, topic_path: str) -> None:
        self._publisher = publisher
        self._topic = topic_path

    def attributes_for(
        self, delivery: Delivery, decision: DeadLetter[Any]
    ) -> dict[str, str] | None:
        return fitting_dead_letter_attributes(self._topic, delivery, decision)

    def publish(
        self, delivery: Delivery, decision: DeadLetter[Any], on_done: Settled | None = None
    ) -> Future[str]:
        attributes = self.attributes_for(delivery, decision)
        if attributes is None:
            problem = publish_problem(
                self._topic, len(delivery.data), compact_dead_letter_attributes(delivery, decision)
            )
            return refuse(
                TooLargeToDeadLetter(f"message {delivery.message_id}: {problem}"), on_done
            )
        return publish_then_settle(
            self._publisher,
            topic=self._topic,
            delivery=delivery,
            attributes=attributes,
            on_done=on_done,
            too_large=TooLargeToDeadLetter,
        )


def original_attributes(delivery: Delivery) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(delivery.attributes or {}).items()}


class Republisher:
    """Moves a delivery to another topic (routing to a class topic, or re-parking).

    Never raises: a copy over Pub/Sub's limits is reported as :class:`TooLargeToPublish`
    through ``on_done`` and the delivery is left unsettled for the caller to decide.
    """

    def __init__(self, publisher: Publisher, topic_for: Callable[[str], str]) -> None:
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
