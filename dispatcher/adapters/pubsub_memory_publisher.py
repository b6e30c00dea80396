"""In-memory twin of ``pubsub_v1.PublisherClient`` and of the topics it publishes to.

Why: dead-lettering, re-parking and routing publish first and settle the delivery after, so
a test of the loop needs a publisher whose outcomes it controls: stored, failed (injected),
still pending (resolved when the test says), or refused for size. The twin keeps the real
client's shape (``publish(topic, data, **attrs) -> Future[str]``) and its failure modes:
``MessageTooLargeError`` raised synchronously from ``publish`` when the request would exceed
10,000,000 bytes (the client's own check), and the server's refusals (too many or too long
attributes, no data and no attributes, unknown topic) delivered through the future as
``google.api_core`` exceptions. Nothing runs on another thread: done-callbacks run inside
``publish`` or :meth:`MemoryPublisher.complete_pending`.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import count

from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError

from dispatcher.adapters.pubsub_limits import (
    MAX_REQUEST_BYTES,
    attribute_problem,
    publish_request_bytes,
)
from dispatcher.adapters.pubsub_memory import MemorySubscription, MemoryTopic, StoredMessage
from dispatcher.core.clock import Clock, FakeClock


class MemoryPubSub:
    """Topics and subscriptions by resource path, sharing one clock and one id sequence."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.topics: dict[str, MemoryTopic] = {}
        self.subscriptions: dict[str, MemorySubscription] = {}
        self._ids = count(1)

    def topic(self, path: str) -> MemoryTopic:
        """The topic at ``path``, created on first use."""
        if path not in self.topics:
            self.topics[path] = MemoryTopic(path, ids=self._ids, clock=self.clock)
        return self.topics[path]

    def subscription(
        self,
        path: str,
        *,
        topic: str,
        ack_deadline: float = 10.0,
        max_delivery_attempts: int | None = None,
        dead_letter_topic: str | None = None,
    ) -> MemorySubscription:
        """A new subscription on ``topic`` (receives what is published from now on)."""
        if path in self.subscriptions:
            raise ValueError(f"subscription {path} exists")
        created = MemorySubscription(
            path,
            self.topic(topic),
            clock=self.clock,
            ack_deadline=ack_deadline,
            max_delivery_attempts=max_delivery_attempts,
            dead_letter_topic=None if dead_letter_topic is None else self.topic(dead_letter_topic),
        )
        self.subscriptions[path] = created
        return created


@dataclass(slots=True)
class _Pending:
    future: Future[str]
    topic: str
    data: bytes
    attributes: dict[str, str]
    error: BaseException | None


class MemoryPublisher:
    """Publishes into a :class:`MemoryPubSub`; failures and timing are the test's to choose.

    ``resolve_later=True``: futures stay pending until :meth:`complete_pending`, which is when
    the message is stored (a publish in flight is not yet on the topic).
    """

    def __init__(self, broker: MemoryPubSub | None = None, *, resolve_later: bool = False) -> None:
        self.broker = broker or MemoryPubSub()
        self.resolve_later = resolve_later
        self.published: dict[str, list[StoredMessage]] = {}
        self._failures: deque[BaseException] = deque()
        self._pending: deque[_Pending] = deque()
        self._stopped = False

    def fail_next(self, n: int, error: BaseException) -> None:
        """The next ``n`` publishes fail with ``error`` (through their futures)."""
        self._failures.extend([error] * n)

    def publish(self, topic: str, data: bytes, **attrs: str | bytes) -> Future[str]:
        if self._stopped:
            raise RuntimeError("Cannot publish on a stopped publisher.")
        if not isinstance(data, bytes):
            raise TypeError("Data being published to Pub/Sub must be sent as a bytestring.")
        attributes = {key: _text(value) for key, value in attrs.items()}
        if publish_request_bytes(topic, len(data), attributes) > MAX_REQUEST_BYTES:
            raise MessageTooLargeError(
                "The message being published would produce too large a publish request "
                f"that would exceed the maximum allowed size on the backend "
                f"({MAX_REQUEST_BYTES} bytes)."
            )
        error = self._failures.popleft() if self._failures else None
        pending = _Pending(Future(), topic, data, attributes, error)
        if self.resolve_later:
            self._pending.append(pending)
        else:
            self._resolve(pending)
        return pending.future

    def pending_count(self) -> int:
        return len(self._pending)

    def complete_pending(self, n: int | None = None) -> int:
        """Resolve the oldest ``n`` (default: all) publishes in flight; return how many."""
        done = 0
        while self._pending and (n is None or done < n):
            self._resolve(self._pending.popleft())
            done += 1
        return done

    def messages(self, topic: str) -> list[StoredMessage]:
        """What this publisher stored on ``topic``, in order."""
        return list(self.published.get(topic, []))

    def stop(self) -> None:
        self._stopped = True

    def _resolve(self, pending: _Pending) -> None:
        error = pending.error or _refusal(self.broker, pending)
        if error is not None:
            pending.future.set_exception(error)
            return
        stored = self.broker.topic(pending.topic).publish(pending.data, pending.attributes)
        self.published.setdefault(pending.topic, []).append(stored)
        pending.future.set_result(stored.message_id)


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError("All attributes being published to Pub/Sub must be sent as text strings.")


def _refusal(broker: MemoryPubSub, pending: _Pending) -> BaseException | None:
    """What the server would answer instead of storing the message, if anything."""
    if pending.topic not in broker.topics:
        return gexc.NotFound(f"Topic not found: {pending.topic}")  # type: ignore[no-untyped-call]
    if not pending.data and not pending.attributes:
        return gexc.InvalidArgument(  # type: ignore[no-untyped-call]
            "Some messages contain no data and no attributes."
        )
    problem = attribute_problem(pending.attributes)
    if problem is not None:
        return gexc.InvalidArgument(f"Invalid attributes: {problem}")  # type: ignore[no-untyped-call]
    return None
