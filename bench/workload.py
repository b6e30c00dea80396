"""What the phases feed and count: small orders, a counting sink, metrics that keep ages.

``BenchMetrics`` is the service's own :class:`~dispatcher.service.metrics.Metrics` (so the
dispatcher does the work it does in production) plus what the benchmark reads back: orders inside
created Workflows, and every order's age from its Pub/Sub publish to its settlement (the ack
the executor sends once the order's Workflow exists).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.adapters.sinks import CreateResult, WorkflowSink
from dispatcher.service.metrics import Metrics

ORDER_SIZE_BYTES = 1_000_000  # 1 MB input: the "small" class of the built-in configuration


def order_payload(run: str, phase: str, index: int) -> bytes:
    """A small valid order (~110 bytes) of the built-in ``small`` class."""
    body = {
        "order_id": f"{run}-{phase}-{index:06d}",
        "input": {"uri": f"gs://bench-in/{phase}/{index:06d}", "size_bytes": ORDER_SIZE_BYTES},
    }
    return json.dumps(body, separators=(",", ":")).encode()


class CountingSink:
    """Counts create calls (API writes for the memory sink) in front of the real sink."""

    def __init__(self, inner: WorkflowSink) -> None:
        self.inner = inner
        self._calls = itertools.count(1)
        self.calls = 0

    def create(self, body: dict[str, Any]) -> CreateResult:
        self.calls = next(self._calls)  # atomic under the GIL: no lock in the hot path
        return self.inner.create(body)

    def api_writes(self) -> int:
        """HTTP writes including retries for the Kubernetes sink; create calls otherwise."""
        writes = getattr(self.inner, "api_writes", None)
        return int(writes) if isinstance(writes, int) else self.calls


class BenchMetrics(Metrics):
    """The service's metrics, plus the exact publish -> settled age of every order.

    ``created`` runs on a create worker, ``order_settled`` on the engine thread (the executor
    calls it on the ack that follows a create, once per order), so each keeps its own figures.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.created_orders = 0
        self.workflows = 0
        self.settled = 0  # orders acked after their Workflow exists
        self.ages: list[float] = []

    def created(self, size_class: str, orders: int, result: str, latency: float) -> None:
        super().created(size_class, orders, result, latency)
        with self._lock:
            self.created_orders += orders
            self.workflows += 1

    def order_settled(self, size_class: str | None, receipt: Any) -> None:
        super().order_settled(size_class, receipt)
        published = getattr(receipt, "publish_time", None)
        if published is not None:
            self.ages.append(time.time() - published.timestamp())  # one thread: no lock
        self.settled += 1

    def held(self) -> int:
        total = 0.0
        for metric in self.held_orders.collect():
            for sample in metric.samples:
                total += sample.value
        return int(total)


@dataclass
class FakeDelivery:
    """Stands in for a Pub/Sub message where no server is involved."""

    data: bytes
    message_id: str
    publish_time: datetime
    attributes: dict[str, str] = field(default_factory=dict)
    delivery_attempt: int | None = None
    acked: bool = False

    def ack(self) -> None:
        self.acked = True

    def nack(self) -> None:
        self.acked = False
