"""(c) The dispatcher from a backlog, and its engine thread alone without Pub/Sub.

``phase_dispatcher`` runs :class:`dispatcher.service.assembly.Service` wired like ``dispatcher run``
with limits raised so that nothing saturates; the clock stops when every order has been acked
after its Workflow exists. ``engine_alone`` runs the same
:class:`~dispatcher.service.loop.Runner` and :class:`~dispatcher.service.executor.Executor` on a
memory sink, its inbox filled beforehand with fake deliveries: what the dispatcher's own work
costs per order, to read (c) against.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.harness import Bench, deadline_for
from bench.measure import CpuMeter, thread_cpu_seconds, wait_for
from bench.results import PhaseResult, cpu_per_order
from bench.workload import BenchMetrics, FakeDelivery, order_payload
from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.adapters.ledger_memory import MemoryLedger
from dispatcher.adapters.sinks import MemorySink
from dispatcher.core.clock import monotonic
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.service.executor import Executor
from dispatcher.service.loop import Runner


def phase_dispatcher(bench: Bench, orders: int) -> PhaseResult:
    """(c) the dispatcher from a backlog, below saturation (limits raised)."""
    subscription = bench.backlog("dispatcher", orders)
    with bench.service(subscription) as (service, sink, metrics):
        meter = CpuMeter(bench.emulator.pid)
        service.start()
        engine = service.runner.engine
        # The executor acks each order right after its Workflow exists (order_settled).
        wait_for(
            lambda: metrics.settled >= orders,
            timeout_s=deadline_for(orders),
            what="dispatcher",
        )
        cpu = meter.read()
        seconds = time.perf_counter() - meter.started
        threads = meter.threads_per_order(orders)
        wait_for(lambda: engine.idle() and engine.in_flight() == 0, timeout_s=30, what="idle")
    bench.drop(subscription)
    writes = sink.api_writes()
    return PhaseResult(
        "dispatcher",
        orders,
        seconds,
        orders / seconds,
        cpu,
        cpu_per_order(cpu, seconds, orders),
        threads,
        create_calls=sink.calls,
        api_writes=writes,
        writes_per_order=writes / orders,
        extra={"workflows": metrics.workflows, "orders_per_workflow": orders / metrics.workflows},
    )


def engine_alone(bench: Bench, orders: int) -> dict[str, float]:
    """The loop's work per order without Pub/Sub: the real runner and executor, memory sink.

    Every delivery is in the runner's inbox before its thread starts, so the engine thread
    takes full turns (``MAX_EVENTS_PER_TURN``) and the clock runs from ``start()`` until the
    last order is acked. It says how much of (c)'s CPU per order is the dispatcher's own work.
    """
    settings = bench.settings("unused")
    now = datetime.now(UTC)
    deliveries = [
        FakeDelivery(order_payload(bench.run, "engine", i), str(i), now) for i in range(orders)
    ]
    engine: Engine[Any] = Engine(
        settings,
        cluster=LocalClusterState(),
        members=StaticMembers(),
        clock=monotonic,
        config=EngineConfig(max_in_flight=settings.service.create_workers),
        message_id=lambda delivery: str(delivery.message_id),
    )
    metrics = BenchMetrics()

    def make_executor(
        *, post: Callable[[object], None], submit: Callable[..., Any]
    ) -> Executor[Any]:
        return Executor(
            sink=MemorySink(),
            publisher=bench.publisher,
            ledger=MemoryLedger(),
            dead_letter_topic=bench.dead_letter_topic,
            repark_topic=lambda _size_class: bench.dead_letter_topic,
            post=post,
            submit=submit,
            metrics=metrics,
        )

    runner = Runner(
        engine,
        make_executor=make_executor,
        clock=monotonic,
        metrics=metrics,
        create_workers=settings.service.create_workers,
    )
    for delivery in deliveries:
        runner.offer(delivery)
    gc.collect()
    threads_before = thread_cpu_seconds()
    started = time.perf_counter()
    cpu_started = time.process_time()
    runner.start()
    wait_for(lambda: metrics.settled >= orders, timeout_s=deadline_for(orders), what="engine")
    cpu = time.process_time() - cpu_started
    seconds = time.perf_counter() - started
    engine_cpu = thread_cpu_seconds().get("engine", 0.0) - threads_before.get("engine", 0.0)
    runner.drain(10)
    runner.close(10)
    if not all(d.acked for d in deliveries):
        raise RuntimeError("engine alone: some orders were not acked")
    return {
        "orders": orders,
        "seconds": round(seconds, 3),
        "cpu_us_per_order": round(cpu / orders * 1e6, 1),
        "engine_thread_us_per_order": round(engine_cpu / orders * 1e6, 1),
        "orders_per_second": round(orders / seconds),
    }
