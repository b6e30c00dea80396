"""Pub/Sub intake and copies of deliveries published elsewhere, on the official client.

The subscriber callback does as little as possible (it runs on the client's threads and its
cost is paid per message). Dead letters carry the original data and attributes plus the
``dlq_*`` attributes of the contract.

:func:`publish_copy` is the one way a delivery's data is published elsewhere (dead letters,
re-parked copies, orders routed to their class topic), the delivery settled only once the copy
is stored; it raises nothing and reports every outcome through a callback. A message near
Pub/Sub's 10 MB limit is why sizes are computed first: the ``dlq_*`` attributes can push an
order that fit over the limit, and the client would raise ``MessageTooLargeError`` on the
caller's thread. A dead letter that does not fit with every attribute falls back to a compact
set (the original attributes plus ``dlq_reason``, ``dlq_stage``, ``original_message_id`` and a
short ``dlq_detail``); if even that does not fit, :func:`fitting_dead_letter_attributes` says
so and the caller leaves the message to Pub/Sub's own dead-letter policy, which stores it
intact, rather than store an altered copy (a truncated body would be a lost order that looks
like a kept one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError

from dispatcher import __version__
from dispatcher.adapters.pubsub_limits import (
    MAX_VALUE_BYTES,
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


def original_attributes(delivery: Delivery) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(delivery.attributes or {}).items()}


class Publisher(Protocol):
    """What is used of ``pubsub_v1.PublisherClient`` (``MemoryPublisher`` fits too)."""

    def publish(self, topic: str, data: bytes, **attrs: str) -> Future[str]: ...


#: Told how a publish ended: None once the message is stored, else why it is not.
Done = Callable[[BaseException | None], None]


def publish_copy(
    publisher: Publisher,
    *,
    topic: str,
    delivery: Delivery,
    attributes: Mapping[str, str],
    settle: Callable[[], None],
    done: Done,
) -> None:
    """Publish ``delivery``'s data to ``topic``; once it is stored, ``settle()``, then ``done``.

    Raises nothing of its own: every failure reaches ``done(error)`` with nothing settled. A
    copy over Pub/Sub's limits is not sent and arrives as :class:`TooLargeToPublish` (checked
    first; the client's ``MessageTooLargeError`` is translated too), anything ``publish``
    raises or its future reports arrives as it is. What a failure means (nack, retry, dead
    letter) is the caller's to decide.
    """
    failure: BaseException | None = None
    problem = publish_problem(topic, len(delivery.data), attributes)
    if problem is not None:
        failure = TooLargeToPublish(f"message {delivery.message_id}: {problem}")
    else:
        try:
            future: Future[str] = publisher.publish(topic, delivery.data, **attributes)
        except MessageTooLargeError as exc:
            failure = TooLargeToPublish(f"message {delivery.message_id}: {exc}")
            failure.__cause__ = exc
        except Exception as exc:  # noqa: BLE001 - every failure goes to done, none escapes
            failure = exc
    if failure is not None:
        done(failure)
        return

    def finished(published: Future[str]) -> None:
        error = published.exception()
        if error is None:
            settle()
        done(error)

    future.add_done_callback(finished)


def ensure_topic(publisher: pubsub_v1.PublisherClient, topic_path: str) -> None:
    """Create a topic if it does not exist (for local runs and tests)."""
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(name=topic_path)


def ensure_subscription(
    subscriber: pubsub_v1.SubscriberClient, subscription_path: str, topic_path: str
) -> None:
    with contextlib.suppress(gexc.AlreadyExists):
        subscriber.create_subscription(name=subscription_path, topic=topic_path)
