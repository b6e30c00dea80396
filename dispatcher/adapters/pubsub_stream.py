"""A streaming pull that can be closed before the work it delivered is settled.

Why: a replica that drains with its streams open keeps receiving, and every order it re-parks
onto the topic it reads from comes straight back, to be re-parked again until the deadline.
So shutdown closes the streams first and settles afterwards. The client library can only ack
through an open stream's machinery, so each message is tagged with its subscription on the
way in (one attribute, set in the callback), and :class:`UnaryAcks` acks closed-stream
deliveries with plain ``Acknowledge`` calls, which need no stream.

The engine's streams run their callback on the client's own thread that releases the message
(:class:`InlineScheduler`) instead of a hop through the client's default pool of ten threads:
all it does is tag the message and put it in the runner's inbox, and the hop (a future, a
queue and a thread wake-up per message) cost more than that. So no message waits in a callback
queue either, and none can be nacked from one on close. The router's stream, whose callback
publishes, keeps the pool; ``await_callbacks_on_shutdown`` is set for both.
"""

from __future__ import annotations

import queue
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.subscriber.scheduler import Scheduler

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
    inline: bool = True,
) -> Any:
    """One streaming pull whose messages remember where they came from.

    ``inline``: ``put`` only enqueues, so it runs on the client's own thread; a callback that
    does real work (the ``class_topics`` router publishes) keeps the client's thread pool.
    """

    def on_message(message: Any) -> None:
        setattr(message, SUBSCRIPTION_ATTR, subscription)
        put(message)

    return subscriber.subscribe(
        subscription,
        callback=on_message,
        flow_control=flow_control(settings, max_messages),
        scheduler=InlineScheduler() if inline else None,
        await_callbacks_on_shutdown=True,
    )


class InlineScheduler(Scheduler):  # type: ignore[misc]  # the SDK ships no types
    """Calls the callback at once, on the client's thread: only for a callback that never
    blocks (``on_message`` above only enqueues). One per stream: ``queue`` carries that
    stream's acks to its dispatcher thread, as the client's own scheduler's does."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    @property
    def queue(self) -> queue.Queue[Any]:
        return self._queue

    def schedule(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        callback(*args, **kwargs)

    def shutdown(self, await_msg_callbacks: bool = False) -> list[Any]:
        return []  # nothing is ever waiting: every callback has run already


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
