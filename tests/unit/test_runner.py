"""The loop survives anything an event or a decision throws at it (issue 8, defects 1 and 2)."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.adapters.kube_memory import MemoryWorkflowApi
from dispatcher.core.clock import FakeClock
from dispatcher.core.engine import Engine
from dispatcher.core.order import Reason
from dispatcher.service.executor import Executor
from dispatcher.service.loop import guarded, handle
from dispatcher.service.metrics import Metrics
from tests.unit.helpers import settings, twin_executor

BIG = 10**12


class Receipt:
    def __init__(self, data: bytes, message_id: str = "m1") -> None:
        self.data = data
        self.attributes: dict[str, str] = {}
        self.message_id = message_id
        self.publish_time = None
        self.delivery_attempt = 1
        self.acks = self.nacks = 0

    def ack(self) -> None:
        self.acks += 1

    def nack(self) -> None:
        self.nacks += 1


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        self.sent.append((topic, data, attributes))
        future: Future[str] = Future()
        future.set_result(str(len(self.sent)))
        return future


def loop() -> tuple[Engine[Any], Executor[Any], list[object], Publisher, MemoryWorkflowApi]:
    events: list[object] = []
    publisher, api = Publisher(), MemoryWorkflowApi()
    engine: Engine[Any] = Engine(
        settings(), cluster=LocalClusterState(), members=StaticMembers(), clock=FakeClock()
    )
    executor = twin_executor(
        post=events.append, publisher=publisher, sink=api, dead_letter_topic="dlq"
    )
    return engine, executor, events, publisher, api


def run(engine: Engine[Any], executor: Executor[Any], events: list[object], first: object) -> None:
    pending = [first]
    while pending:
        decisions = []
        for event in pending:
            decisions.extend(handle(engine, executor, event, Metrics()))
        pending.clear()
        executor.carry_out(decisions)
        pending.extend(events)
        events.clear()


def order(order_id: str) -> bytes:
    return json.dumps(
        {"order_id": order_id, "input": {"uri": "gs://b", "size_bytes": BIG}}
    ).encode()


def test_a_bug_in_the_engine_dead_letters_the_delivery_and_the_loop_goes_on() -> None:
    engine, executor, events, publisher, _ = loop()

    def broken(*_args: object) -> list[object]:
        raise ZeroDivisionError("a bug")

    engine.receive = broken  # type: ignore[method-assign]
    receipt = Receipt(order("o1"))
    run(engine, executor, events, receipt)
    [(topic, _data, attributes)] = publisher.sent
    assert topic == "dlq" and attributes["dlq_reason"] == Reason.INTERNAL_ERROR.value
    assert receipt.acks == 1 and receipt.nacks == 0
    assert guarded(Metrics(), "tick", broken) == []


def test_an_unexpected_create_failure_is_dead_lettered_with_a_reason_not_released() -> None:
    engine, executor, events, publisher, api = loop()
    api.faults = ["bug"]
    receipt = Receipt(order("o1"))
    run(engine, executor, events, receipt)
    [(_topic, _data, attributes)] = publisher.sent
    assert attributes["dlq_reason"] == Reason.INTERNAL_ERROR.value
    assert attributes["dlq_stage"] == "create"
    assert receipt.acks == 1 and receipt.nacks == 0


def test_a_message_too_large_even_to_dead_letter_is_left_to_pubsub_not_raised() -> None:
    engine, executor, events, publisher, _ = loop()
    receipt = Receipt(b"x" * 10_000_000)
    run(engine, executor, events, receipt)
    assert publisher.sent == []
    assert receipt.nacks == 1 and receipt.acks == 0  # Pub/Sub's dead-letter policy keeps it


def test_created_orders_are_acked_once_the_workflow_exists() -> None:
    engine, executor, events, _, api = loop()
    receipt = Receipt(order("o1"))
    run(engine, executor, events, receipt)
    assert len(api.workflows) == 1 and receipt.acks == 1
