"""Publishing orders as the dispatcher will read them: checked first, then batched by the client.

Why: without it every upstream team writes its own publisher, and an order it gets wrong is
only found out in the dead-letter topic. The check here is the service's own intake
(:class:`dispatcher.core.intake.Intake`), so an order it passes is one the service accepts under
the same configuration; a refused order raises :class:`InvalidOrder` and is never sent. Valid
orders go through ``google-cloud-pubsub``'s own batching and flow control; the futures handed
back resolve to the message id or fail with :class:`PublishError`, so callers never see an SDK
type. The public face is :mod:`dispatcher.publish`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from google.cloud.pubsub_v1 import types

from dispatcher.adapters.pubsub_clients import publisher_client
from dispatcher.config import Settings, load_settings
from dispatcher.core.intake import Intake, Refused
from dispatcher.errors import InvalidOrder, PublishError

#: The attribute that carries the order id (the service checks it against the body).
ORDER_ID_ATTRIBUTE = "order_id"


@dataclass(frozen=True, slots=True)
class Batching:
    """The client's batch settings: a batch is sent at whichever limit comes first."""

    max_messages: int = 1000
    max_bytes: int = 1_000_000  # Pub/Sub takes 10 MB per request; smaller batches flow sooner
    max_latency: float = 0.05  # seconds a partial batch waits
    max_pending: int = 20_000  # unconfirmed orders before publish() blocks (flow control)


@dataclass(frozen=True, slots=True)
class Checked:
    """An order the service would accept: the exact bytes to send, its id and size class."""

    data: bytes
    order_id: str
    size_class: str


class OrderCheck:
    """The service's intake as a yes-or-raise: no network, usable for dry runs."""

    def __init__(self, settings: Settings) -> None:
        self._intake = Intake(settings)

    def __call__(
        self, order: bytes | str | Mapping[str, Any], attributes: Mapping[str, str] | None = None
    ) -> Checked:
        data = encode(order)
        verdict = self._intake(data, attributes or {}, receipt=None, now=0.0)
        if isinstance(verdict, Refused):
            rejection = verdict.rejection
            raise InvalidOrder(
                rejection.detail,
                reason=rejection.reason,
                stage=verdict.stage,
                order_id=rejection.order_id,
            )
        return Checked(data, verdict.order_id, verdict.size_class)


def encode(order: bytes | str | Mapping[str, Any]) -> bytes:
    """The message body: bytes as given, text as UTF-8, a mapping as compact JSON."""
    if isinstance(order, bytes):
        return order
    if isinstance(order, str):
        return order.encode("utf-8")
    return json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OrderPublisher:
    """Checks orders with the service's intake and publishes the valid ones to ``topic``.

    ``topic`` is a full path (``projects/P/topics/T``) or a short name in ``project`` (default:
    ``pubsub.project`` of ``settings``). ``settings`` defaults to the configuration the CLI
    would load ($DISPATCHER_CONFIG, else the built-in one); pass the deployed one so that size
    classes, steps and URI schemes are judged as the service will. With
    ``PUBSUB_EMULATOR_HOST`` set the client talks to that emulator.
    """

    def __init__(
        self,
        topic: str,
        *,
        project: str | None = None,
        settings: Settings | None = None,
        batching: Batching | None = None,
        client: Any = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        project_id = project or self.settings.pubsub.project
        self.topic = (
            topic if topic.startswith("projects/") else f"projects/{project_id}/topics/{topic}"
        )
        self.check = OrderCheck(self.settings)
        limits = batching or Batching()
        self._owns_client = client is None
        self._client = client if client is not None else _client(limits)
        self._pending: set[Future[str]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def publish(
        self, order: bytes | str | Mapping[str, Any], *, attributes: Mapping[str, str] | None = None
    ) -> Future[str]:
        """Check ``order`` and queue it; the future resolves to the Pub/Sub message id.

        Raises :class:`InvalidOrder` (nothing sent) when the service would dead-letter it.
        The ``order_id`` attribute is set to the body's order id unless ``attributes`` has one.
        """
        return self.publish_checked(self.check(order, attributes), attributes=attributes)

    def publish_checked(
        self, checked: Checked, *, attributes: Mapping[str, str] | None = None
    ) -> Future[str]:
        """Queue an order that ``self.check`` passed (with the same ``attributes``)."""
        if self._closed:
            raise RuntimeError("this OrderPublisher is closed")
        sent = dict(attributes or {})
        sent.setdefault(ORDER_ID_ATTRIBUTE, checked.order_id)
        result: Future[str] = Future()
        with self._lock:
            self._pending.add(result)
        inner = self._client.publish(self.topic, checked.data, **sent)
        inner.add_done_callback(lambda done: self._settle(done, result, checked.order_id))
        return result

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every order published so far is confirmed or failed."""
        with self._lock:
            pending = list(self._pending)
        _, not_done = wait(pending, timeout=timeout)
        if not_done:
            raise TimeoutError(f"{len(not_done)} orders still unconfirmed after {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        """Send what is batched, wait for it, and stop the client (when this object made it)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.stop()  # sends the open batches, then refuses new publishes
        self.flush(timeout)

    def __enter__(self) -> OrderPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _settle(self, done: Any, result: Future[str], order_id: str) -> None:
        error = done.exception()
        if error is None:
            result.set_result(str(done.result()))
        else:
            failure = PublishError(
                f"order {order_id!r} was not published to {self.topic}: {error}",
                order_id=order_id,
            )
            failure.__cause__ = error
            result.set_exception(failure)
        with self._lock:  # only once settled, so flush() never returns before the result is set
            self._pending.discard(result)


def _client(limits: Batching) -> Any:
    return publisher_client(
        batch_settings=types.BatchSettings(
            max_messages=limits.max_messages,
            max_bytes=limits.max_bytes,
            max_latency=limits.max_latency,
        ),
        publisher_options=types.PublisherOptions(
            flow_control=types.PublishFlowControl(
                message_limit=limits.max_pending,
                byte_limit=max(limits.max_bytes * 4, 10_000_000),
                limit_exceeded_behavior=types.LimitExceededBehavior.BLOCK,
            )
        ),
    )
