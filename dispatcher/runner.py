"""The runner: one thread owns the engine; Pub/Sub threads only enqueue; creates run in a pool.

Every input (a delivery, a create outcome, a timer) becomes an event on one queue, so the
engine needs no locks. Decisions are carried out here: ack, release (nack), dead-letter
(publish, then ack), create (in the pool, the outcome comes back as an event).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dispatcher.adapters.pubsub import DeadLetterPublisher, Delivery, Republisher, Settled
from dispatcher.adapters.sinks import WorkflowSink
from dispatcher.core.clock import Clock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Release, Repark
from dispatcher.core.engine import Engine
from dispatcher.core.render import render_workflow
from dispatcher.errors import PermanentError, TransientError
from dispatcher.logging import get_logger
from dispatcher.metrics import Metrics

log = get_logger()


@dataclass(frozen=True, slots=True)
class _Outcome:
    name: str
    error: BaseException | None


_STOP = object()
MAX_EVENTS_PER_TURN = 512
GAUGE_SECONDS = 0.5


def send_to_dead_letters(
    decision: DeadLetter[Delivery],
    *,
    dead_letters: DeadLetterPublisher,
    metrics: Metrics,
    on_done: Settled | None = None,
) -> None:
    """Log, count and publish one dead letter (the original is acked once it is stored)."""
    log.warning(
        "order_dead_lettered",
        order_id=decision.order_id,
        message_id=decision.receipt.message_id,
        reason=decision.reason.value,
        detail=decision.detail,
        stage=decision.stage,
    )
    metrics.dead_lettered(decision.reason)
    dead_letters.publish(decision.receipt, decision, on_done=on_done)


class Runner:
    def __init__(
        self,
        engine: Engine[Delivery],
        *,
        sink: WorkflowSink,
        dead_letters: DeadLetterPublisher,
        clock: Clock,
        metrics: Metrics | None = None,
        create_workers: int = 8,
        replica: str | None = None,
        reparker: Republisher | None = None,
    ) -> None:
        self._replica = replica
        self._reparker = reparker
        self.engine = engine
        self._sink = sink
        self._dead_letters = dead_letters
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(create_workers, thread_name_prefix="create")
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._draining = threading.Event()
        self._stopped = threading.Event()
        self._pending_publishes = 0
        self._dl_lock = threading.Lock()

    # -- called from other threads -------------------------------------------------------
    def offer(self, delivery: Delivery) -> None:
        """The Pub/Sub callback: enqueue and return."""
        self._inbox.put(delivery)

    def call_soon(self, fn: Callable[[], list[Decision[Delivery]]]) -> None:
        """Run ``fn`` on the engine thread and carry out the decisions it returns."""
        self._inbox.put(fn)

    def start(self) -> None:
        self._thread.start()

    def drain(self, timeout: float) -> bool:
        """Stop taking orders, flush or release what is held, wait for creates in flight."""
        self._inbox.put(_STOP)
        finished = self._stopped.wait(timeout)
        self._pool.shutdown(wait=finished, cancel_futures=not finished)
        return finished

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
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            if self._draining.is_set():
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            events = self._next_events(timeout)
            decisions: list[Decision[Delivery]] = []
            received = redelivered = 0
            for event in events:
                if event is _STOP:
                    self._draining.set()
                    decisions.extend(engine.drain())
                elif isinstance(event, _Outcome):
                    decisions.extend(self._settle(event))
                elif callable(event):
                    decisions.extend(event())
                else:
                    delivery: Any = event
                    received += 1
                    attempt = delivery.delivery_attempt
                    if attempt is not None and attempt > 1:
                        redelivered += 1
                    decisions.extend(engine.receive(delivery, delivery.data, delivery.attributes))
            if received:
                self._metrics.received(received, redelivered)
            decisions.extend(engine.tick())
            self._carry_out(decisions)
            now = self._clock()
            if now >= next_gauges:  # gauges on a timer: per event they cost more than an order
                self._metrics.observe_engine(engine)
                next_gauges = now + GAUGE_SECONDS
            if self._draining.is_set() and engine.in_flight() == 0 and self._publishes_done():
                self._metrics.observe_engine(engine)
                self._stopped.set()
                return

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

    def _settle(self, outcome: _Outcome) -> list[Decision[Delivery]]:
        error = outcome.error
        if error is None:
            return self.engine.created(outcome.name)
        if isinstance(error, PermanentError):
            log.error(
                "workflow_rejected",
                workflow=outcome.name,
                reason=error.reason.value,
                detail=str(error),
            )
            return self.engine.rejected(outcome.name, error.reason, str(error))
        level = "warning" if isinstance(error, TransientError) else "error"
        getattr(log, level)("workflow_create_failed", workflow=outcome.name, error=str(error))
        return self.engine.failed_transiently(outcome.name)

    def _carry_out(self, decisions: list[Decision[Delivery]]) -> None:
        for decision in decisions:
            if isinstance(decision, Ack):
                decision.receipt.ack()
            elif isinstance(decision, Create):
                self._submit(decision)
            elif isinstance(decision, Release):
                decision.receipt.nack()
            elif isinstance(decision, DeadLetter):
                self._dead_letter(decision)
            elif isinstance(decision, Repark):
                self._repark(decision)

    def _submit(self, decision: Create[Delivery]) -> None:
        batch = decision.batch
        body = render_workflow(
            batch,
            settings=self.engine.settings,
            message_ids=[str(r.message_id) for r in batch.receipts()],
            replica=self._replica,
        )
        started = self._clock()

        def create() -> None:
            error: BaseException | None = None
            try:
                result = self._sink.create(body)
            except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
                error = exc
            else:
                self._metrics.submitted(batch, result.value, self._clock() - started)
                log.info(
                    "workflow_created",
                    workflow=decision.name,
                    size_class=batch.size_class,
                    orders=len(batch.tickets),
                    result=result.value,
                )
            self._inbox.put(_Outcome(decision.name, error))

        self._pool.submit(create)

    def _dead_letter(self, decision: DeadLetter[Delivery]) -> None:
        send_to_dead_letters(
            decision,
            dead_letters=self._dead_letters,
            metrics=self._metrics,
            on_done=self._track_publish(
                failure_event="dead_letter_publish_failed", message_id=decision.receipt.message_id
            ),
        )

    def _repark(self, decision: Repark[Delivery]) -> None:
        delivery = decision.receipt
        if self._reparker is None:
            delivery.nack()
            return
        log.info("order_reparked", message_id=delivery.message_id, size_class=decision.size_class)
        self._reparker.move(
            delivery,
            size_class=decision.size_class,
            extra={"reparked_from": str(delivery.message_id)},
            on_done=self._track_publish(),
        )

    def _track_publish(self, *, failure_event: str | None = None, message_id: str = "") -> Settled:
        """Count a publish as pending until it settles; draining waits for every one."""
        with self._dl_lock:
            self._pending_publishes += 1

        def done(ok: bool, error: BaseException | None) -> None:
            with self._dl_lock:
                self._pending_publishes -= 1
            if not ok and failure_event is not None:
                log.error(failure_event, message_id=message_id, error=str(error))
            self._inbox.put(lambda: [])  # wake the loop so draining can finish

        return done

    def _publishes_done(self) -> bool:
        with self._dl_lock:
            return self._pending_publishes == 0
