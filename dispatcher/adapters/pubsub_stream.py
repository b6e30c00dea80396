"""A streaming pull that can be closed before the work it delivered is settled.

Why: a replica that drains with its streams open keeps receiving, and every order it re-parks
onto the topic it reads from comes straight back, to be re-parked again until the deadline.
So shutdown closes the streams first and settles afterwards. The client library can only ack
through an open stream's machinery, so each message is tagged with its subscription on the
way in (one attribute, set in the callback), and :class:`UnaryAcks` acks closed-stream
deliveries with plain ``Acknowledge`` calls, which need no stream.

The stream is opened with ``await_callbacks_on_shutdown``: messages already handed to the
callback queue are delivered to the dispatcher rather than nacked by the client on close.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from google.api_core import exceptions as gexc

from dispatcher.adapters.pubsub import Delivery, flow_control
from dispatcher.config import PubSubSettings
from dispatcher.errors import TransientError

SUBSCRIPTION_ATTR = "bd_subscription"
ACK_IDS_PER_CALL = 2500  # Pub/Sub's limit per Acknowledge request


def open_stream(
    subscriber: Any,
    settings: PubSubSettings,
    put: Callable[[Delivery], None],
    *,
    subscription: str,
    max_messages: int | None = None,
) -> Any:
    """One streaming pull whose messages remember where they came from."""

    def on_message(message: Any) -> None:
        setattr(message, SUBSCRIPTION_ATTR, subscription)
        put(message)

    return subscriber.subscribe(
        subscription,
        callback=on_message,
        flow_control=flow_control(settings, max_messages),
        await_callbacks_on_shutdown=True,
    )


class UnaryAcks:
    """Acks deliveries of closed streams with ``Acknowledge`` calls, grouped by subscription."""

    def __init__(self, subscriber: Any) -> None:
        self._subscriber = subscriber
        self.calls = 0

    def ack(self, receipts: Iterable[Any]) -> None:
        by_subscription: dict[str, list[str]] = defaultdict(list)
        for receipt in receipts:
            path = getattr(receipt, SUBSCRIPTION_ATTR, None)
            if path is None:  # not from a tagged stream (a twin, a test double): its own ack
                receipt.ack()
            else:
                by_subscription[path].append(receipt.ack_id)
        for path, ack_ids in by_subscription.items():
            for start in range(0, len(ack_ids), ACK_IDS_PER_CALL):
                chunk = ack_ids[start : start + ACK_IDS_PER_CALL]
                self.calls += 1
                try:
                    self._subscriber.acknowledge(subscription=path, ack_ids=chunk, timeout=10)
                except gexc.GoogleAPICallError as exc:
                    raise TransientError(f"acknowledge on {path}: {exc}") from exc
