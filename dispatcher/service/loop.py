"""The loop: one thread owns the engine; every input reaches it as an event on one queue.

Pub/Sub callbacks only enqueue (their cost is paid per message), create workers and publish
callbacks enqueue their outcomes, a reload enqueues ``LimitsChanged``: so the engine needs no
locks and sees every event in one order. Decisions go to the one executor. An exception while
handling an event is logged, counted and turned into a dead letter or a retry; it never ends
the loop, so one poison message cannot take the replica down.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dispatcher.adapters.pubsub import Delivery
from dispatcher.core.clock import Clock
from dispatcher.core.decisions import DeadLetter, Decision
from dispatcher.core.engine import Engine
from dispatcher.core.limits import LimitsChanged
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import Created, CreateFailed, NotClaimed, PublishFailed
from dispatcher.logging import get_logger
from dispatcher.service.executor import Executor, Published
from dispatcher.service.metrics import Metrics

log = get_logger()

_STOP = object()
_CLOSE = object()
MAX_EVENTS_PER_TURN = 512
GAUGE_SECONDS = 0.5
OUTCOMES = (Created, CreateFailed, NotClaimed, PublishFailed)
_NOT_DELIVERIES = (*OUTCOMES, Published, LimitsChanged)


class Runner:
    def __init__(
        self,
        engine: Engine[Delivery],
        *,
        make_executor: Callable[..., Executor[Delivery]],
        clock: Clock,
        metrics: Metrics | None = None,
        create_workers: int = 8,
        observe: Callable[[Engine[Delivery]], None] | None = None,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._observe = observe or self._metrics.observe_engine
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        # The engine never has more than ``create_workers`` creates outstanding, so this
        # pool's queue is bounded by construction.
        self._pool = ThreadPoolExecutor(create_workers, thread_name_prefix="create")
        self.executor = make_executor(post=self._inbox.put, submit=self._pool.submit)
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._draining = False
        self._drained = threading.Event()

    # -- called from other threads -------------------------------------------------------
    def offer(self, delivery: Delivery) -> None:
        """The Pub/Sub callback: enqueue and return."""
        self._inbox.put(delivery)

    def limits_changed(self, event: LimitsChanged) -> None:
        self._inbox.put(event)

    def start(self) -> None:
        self._thread.start()

    def drain(self, timeout: float) -> bool:
        """Stop taking orders; wait until creates and publishes in flight have settled."""
        self._inbox.put(_STOP)
        return self._drained.wait(max(0.0, timeout))

    def close(self, timeout: float) -> None:
        """After the streams are closed: end the loop and the create pool."""
        self._inbox.put(_CLOSE)
        self._thread.join(max(0.0, timeout))
        self._pool.shutdown(wait=False, cancel_futures=True)

    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    # -- the engine thread ---------------------------------------------------------------
    def _loop(self) -> None:
        engine = self.engine
        next_gauges = 0.0
        while True:
            deadline = engine.next_deadline()
            # Wake at least for the gauges: an idle loop must not leave them (and /status)
            # at the last busy moment.
            timeout = GAUGE_SECONDS
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - self._clock()))
            if self._draining:
                timeout = min(timeout, 0.05)
            decisions: list[Decision[Delivery]] = []
            received = redelivered = 0
            for event in self._next_events(timeout):
                if event is _CLOSE:
                    return
                if event is _STOP or isinstance(event, _NOT_DELIVERIES):
                    decisions.extend(self._handle(event))
                    continue
                # A delivery (nearly every event): straight to the engine, no type dispatch.
                received += 1
                attempt = getattr(event, "delivery_attempt", None)
                redelivered += attempt is not None and attempt > 1
                decisions.extend(receive(engine, event, self._metrics))
            if received:
                self._metrics.received(received, redelivered)
            decisions.extend(guarded(self._metrics, "tick", engine.tick))
            self.executor.carry_out(decisions)
            now = self._clock()
            if now >= next_gauges:  # gauges on a timer: per event they cost more than an order
                self._observe(engine)
                next_gauges = now + GAUGE_SECONDS
            if (
                self._draining
                and engine.settled_everything()
                and self.executor.pending_publishes == 0
            ):
                self._drained.set()

    def _handle(self, event: object) -> list[Decision[Delivery]]:
        if event is _STOP:
            self._draining = True
            log.info("dispatcher_draining", held=sum(self.engine.held_orders().values()))
            return guarded(self._metrics, "drain", self.engine.drain)
        return handle(self.engine, self.executor, event, self._metrics)

    def _next_events(self, timeout: float | None) -> list[object]:
        """Wait for one event, then take whatever else is already queued (up to a bound)."""
        try:
            events = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        take = self._inbox.get_nowait
        try:
            while len(events) < MAX_EVENTS_PER_TURN:
                events.append(take())
        except queue.Empty:
            pass
        return events


def handle(
    engine: Engine[Any], executor: Executor[Any], event: object, metrics: Metrics
) -> list[Decision[Any]]:
    """One event into the engine; the decisions it returns (never an exception)."""
    if isinstance(event, Published):
        outcome = executor.published(event)
        return [] if outcome is None else guarded(metrics, "outcome", engine.outcome, outcome)
    if isinstance(event, OUTCOMES):
        return guarded(metrics, "outcome", engine.outcome, event)
    if isinstance(event, LimitsChanged):
        log.info("limits_applied")
        return guarded(metrics, "limits", engine.limits_changed, event)
    return receive(engine, event, metrics)


def receive(engine: Engine[Any], event: object, metrics: Metrics) -> list[Decision[Any]]:
    """One delivery into the engine; a bug while taking it becomes its dead letter."""
    delivery: Any = event
    try:
        return engine.receive(delivery, delivery.data, delivery.attributes)
    except Exception as exc:
        metrics.decision_errors.inc()
        log.exception("receive_failed", message_id=delivery.message_id)
        detail = f"{type(exc).__name__}: {exc}"
        return [DeadLetter((delivery,), Reason.INTERNAL_ERROR, detail, "receive")]


def guarded(
    metrics: Metrics, what: str, fn: Callable[..., list[Decision[Any]]], *args: Any
) -> list[Decision[Any]]:
    """Run an engine step; a bug in it is logged and counted, and the loop goes on."""
    try:
        return fn(*args)
    except Exception:
        metrics.decision_errors.inc()
        log.exception("engine_failed", stage=what)
        return []
