"""The loop's own thread, end to end on twins: deliveries in, Workflows created, acks out.

The model-based test drives ``runner.handle`` step by step; this one runs ``Runner._loop`` on
its thread, so a defect in the loop itself (turns, counting, draining) cannot hide.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.adapters.sinks import MemorySink
from dispatcher.core.clock import monotonic
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.service.executor import Executor
from dispatcher.service.loop import MAX_EVENTS_PER_TURN, Runner
from dispatcher.service.metrics import Metrics
from tests.unit.helpers import settings, twin_executor


@dataclass
class Message:
    data: bytes
    message_id: str
    publish_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    attributes: dict[str, str] = field(default_factory=dict)
    delivery_attempt: int | None = None
    acks: int = 0
    nacks: int = 0

    def ack(self) -> None:
        self.acks += 1

    def nack(self) -> None:
        self.nacks += 1


def message(index: int, attempt: int | None = None) -> Message:
    body = {"order_id": f"o-{index}", "input": {"uri": f"gs://b/{index}", "size_bytes": 1000}}
    return Message(json.dumps(body).encode(), str(index), delivery_attempt=attempt)


class Settled(Metrics):
    """Sets ``done`` once ``expected`` orders have been acked after their Workflow exists."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.count = 0
        self.done = threading.Event()

    def order_settled(self, size_class: str | None, receipt: Any) -> None:
        super().order_settled(size_class, receipt)
        self.count += 1
        if self.count >= self.expected:
            self.done.set()


def runner_on_twins(sink: MemorySink, metrics: Metrics) -> Runner:
    cfg = settings()
    engine: Engine[Any] = Engine(
        cfg,
        cluster=LocalClusterState(),
        members=StaticMembers(),
        clock=monotonic,
        config=EngineConfig(max_in_flight=cfg.service.create_workers),
        message_id=lambda delivery: str(delivery.message_id),
    )

    def make_executor(*, post: Callable[[object], None], submit: Callable[..., Any]) -> Executor:
        return twin_executor(post=post, submit=submit, sink=sink, metrics=metrics)

    return Runner(
        engine,
        make_executor=make_executor,
        clock=monotonic,
        metrics=metrics,
        create_workers=cfg.service.create_workers,
    )


def test_the_loop_creates_acks_and_counts_every_delivery() -> None:
    # Several turns, the last one partial; whole batches of 50 (small), so no linger binds.
    orders = 1100
    assert orders > 2 * MAX_EVENTS_PER_TURN
    messages = [message(i, attempt=2 if i % 10 == 0 else 1) for i in range(orders)]
    sink, metrics = MemorySink(), Settled(orders)
    runner = runner_on_twins(sink, metrics)
    for m in messages:
        runner.offer(m)
    runner.start()
    assert metrics.done.wait(timeout=30), f"{metrics.count} of {orders} settled"
    assert runner.alive()
    assert runner.drain(timeout=30)
    runner.close(timeout=10)
    assert all(m.acks == 1 and m.nacks == 0 for m in messages)
    created = [
        json.loads(b["spec"]["arguments"]["parameters"][0]["value"]) for b in sink.bodies.values()
    ]
    assert sorted(o["order_id"] for batch in created for o in batch) == sorted(
        f"o-{i}" for i in range(orders)
    )
    assert metrics.orders_received._value.get() == orders
    assert metrics.redeliveries._value.get() == len(range(0, orders, 10))
    assert metrics.decision_errors._value.get() == 0
