"""Small builders shared by the unit tests."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from dispatcher.adapters.ledger_memory import MemoryLedger
from dispatcher.adapters.pubsub_memory_publisher import MemoryPublisher
from dispatcher.adapters.sinks import MemorySink, WorkflowSink
from dispatcher.config import Settings, load_settings
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order import Order, OrderInput
from dispatcher.service.executor import Executor
from dispatcher.service.metrics import Metrics


def settings(**limits: object) -> Settings:
    base = load_settings(environ={})
    if not limits:
        return base
    return base.model_copy(update={"limits": base.limits.model_copy(update=limits)})


def order(order_id: str, size: int = 1000, **extra: object) -> Order:
    return Order(
        order_id=order_id,
        input=OrderInput(uri="gs://b/" + order_id.replace(" ", "%20"), size_bytes=size),
        **extra,
    )  # type: ignore[arg-type]


def ticket(cfg: Settings, order_id: str, size: int = 1000, now: float = 0.0) -> Ticket[str]:
    made = Classifier(cfg).ticket(order(order_id, size), now=now, receipt=f"m-{order_id}")
    assert isinstance(made, Ticket)
    return made


DEAD_LETTER_TOPIC = "projects/p/topics/dlq"
ORDERS_TOPIC = "projects/p/topics/orders"


def twin_executor(
    *,
    post: Callable[[object], None],
    submit: Callable[..., Any] = lambda fn: fn(),
    publisher: Any = None,
    sink: WorkflowSink | None = None,
    metrics: Metrics | None = None,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
) -> Executor[Any]:
    """The real executor over the twins (or the publisher given): re-parks to
    ``ORDERS_TOPIC``; creates run inline unless ``submit`` says otherwise."""
    return Executor(
        sink=MemorySink() if sink is None else sink,
        publisher=MemoryPublisher() if publisher is None else publisher,
        ledger=MemoryLedger(),
        dead_letter_topic=dead_letter_topic,
        repark_topic=lambda _size_class: ORDERS_TOPIC,
        post=post,
        submit=submit,
        metrics=Metrics() if metrics is None else metrics,
    )


def get(port: int, path: str) -> tuple[int, str]:
    """GET a local ops endpoint: its status and body, error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
