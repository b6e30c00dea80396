"""The loop thread itself (runner.py) with in-memory twins: deliveries keep it alive."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.adapters.sinks import MemorySink
from dispatcher.config import load_settings
from dispatcher.core.clock import monotonic
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.service.executor import Executor
from dispatcher.service.loop import Runner
from tests.unit.helpers import twin_executor


@dataclass
class FakeDelivery:
    data: bytes
    message_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    publish_time: Any = None
    delivery_attempt: int | None = 1
    settlements: list[str] = field(default_factory=list)

    def ack(self) -> None:
        self.settlements.append("ack")

    def nack(self) -> None:
        self.settlements.append("nack")


def test_deliveries_reach_the_engine_and_the_loop_survives_them() -> None:
    base = load_settings(environ={})
    settings = base.model_copy(
        update={
            "classes": [c.model_copy(update={"max_linger_seconds": 0.05}) for c in base.classes]
        }
    )
    engine: Engine[Any] = Engine(
        settings,
        cluster=LocalClusterState(),
        members=StaticMembers(),
        clock=monotonic,
        config=EngineConfig(max_in_flight=2),
    )
    sink = MemorySink()

    def make_executor(*, post: Any, submit: Any) -> Executor[Any]:
        return twin_executor(post=post, submit=submit, sink=sink)

    runner = Runner(engine, make_executor=make_executor, clock=monotonic, create_workers=2)
    runner.start()
    deliveries = [
        FakeDelivery(
            json.dumps(
                {"order_id": f"o-{i}", "input": {"uri": "gs://x", "size_bytes": 10}}
            ).encode(),
            str(i),
            delivery_attempt=1 + i % 2,  # redeliveries are counted on the loop thread
        )
        for i in range(3)
    ]
    try:
        for delivery in deliveries:
            runner.offer(delivery)
        deadline = time.monotonic() + 10
        while not all(d.settlements for d in deliveries):
            assert runner.alive(), "the engine thread died on a delivery"
            assert time.monotonic() < deadline, [d.settlements for d in deliveries]
            time.sleep(0.01)
        assert runner.alive()
        assert [d.settlements for d in deliveries] == [["ack"]] * 3
        assert sink.bodies
    finally:
        assert runner.drain(5)
        runner.close(5)
