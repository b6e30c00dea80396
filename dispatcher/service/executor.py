"""The one place decisions are carried out: settle, publish, create.

Three ports: the deliveries themselves (ack, and nack only for a poison message too large
even to dead-letter), a publisher (``publish(topic, data, **attributes) -> Future``, which
the Pub/Sub client and its in-memory twin both are) and a Workflow sink (the Kubernetes
adapter or its twin), plus the dedupe ledger that remembers created orders. Every outcome,
an exception nobody planned for included, goes back to the engine as an event through
``post``; nothing raised here can end the engine's loop. Creates run through ``submit`` (a
bounded thread pool in the service, inline in the model-based test). Dead letters and
re-parks are published by :class:`~dispatcher.service.copies.Copies`, as the router's are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, assert_never

from dispatcher.adapters.pubsub import Delivery, is_too_large
from dispatcher.adapters.pubsub import original_attributes as copied_attributes
from dispatcher.adapters.pubsub_stream import SUBSCRIPTION_ATTR
from dispatcher.adapters.sinks import CreateResult, WorkflowSink
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Repark
from dispatcher.core.outcomes import (
    Created,
    CreateFailed,
    Failure,
    NotClaimed,
    Outcome,
    PublishFailed,
)
from dispatcher.core.ports import Claims, OrderLedger
from dispatcher.errors import PermanentError, TransientError
from dispatcher.logging import get_logger
from dispatcher.service.copies import Copies
from dispatcher.service.metrics import Metrics

log = get_logger()

D = TypeVar("D", bound=Delivery)


class Executor(Generic[D]):
    def __init__(
        self,
        *,
        sink: WorkflowSink,
        publisher: Any,
        ledger: OrderLedger,
        dead_letter_topic: str,
        repark_topic: Callable[[str], str],
        post: Callable[[object], None],
        submit: Callable[[Callable[[], None]], Any],
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        claims: Claims | None = None,
        contains: Callable[[str], bool] = lambda _order_id: False,
    ) -> None:
        self._claims = claims
        self._contains = contains
        self._sink = sink
        self._copies: Copies[D] = Copies(publisher, metrics=metrics, settle=self.settle)
        self._ledger = ledger
        self._dead_letter_topic = dead_letter_topic
        self._repark_topic = repark_topic
        self._post = post
        self._submit = submit
        self._metrics = metrics
        self._clock = clock
        self.pending_publishes = 0  # touched on the loop thread only (see published)
        #: How deliveries are acked: through their stream (None), or, once the streams are
        #: being closed for shutdown, by an Acknowledge call (adapters/pubsub_stream.py).
        self.unary_acks: Any = None
        #: Streams closed while the service runs (a paused or draining class's), by the id of
        #: the tag their deliveries carry; those deliveries are acked through ``late_acks``.
        self.closed_streams: frozenset[int] = frozenset()
        self.late_acks: Any = None

    def carry_out(self, decisions: list[Decision[D]]) -> None:
        acks: list[D] = []
        for decision in decisions:
            try:
                self._one(decision, acks)
            except Exception as exc:  # noqa: BLE001 - becomes an event, never ends the loop
                self._unplanned(decision, exc)
        if acks:
            try:
                self.settle(acks)
            except Exception as exc:  # noqa: BLE001 - Pub/Sub redelivers; the watch dedupes
                self._metrics.decision_errors.inc()
                log.error("ack_failed", deliveries=len(acks), error=repr(exc))

    def settle(self, receipts: list[D]) -> None:
        """Ack deliveries (any thread): one call for all of them once streams are closing."""
        unary = self.unary_acks
        if unary is not None:
            unary.ack(receipts)
            return
        if self.closed_streams:
            receipts = self._ack_late(receipts)
        for receipt in receipts:
            receipt.ack()

    def _ack_late(self, receipts: list[D]) -> list[D]:
        """Acks those of closed streams with Acknowledge calls; returns the others."""
        closed = self.closed_streams
        late = [r for r in receipts if id(getattr(r, SUBSCRIPTION_ATTR, None)) in closed]
        if not late:
            return receipts
        self.late_acks.ack(late)
        return [r for r in receipts if id(getattr(r, SUBSCRIPTION_ATTR, None)) not in closed]

    def _one(self, decision: Decision[D], acks: list[D]) -> None:
        match decision:
            case Ack():
                acks.extend(decision.receipts)
                if decision.workflow is not None:
                    self._metrics.order_settled(decision.size_class, decision.receipts[0])
            case Create():
                self._submit(lambda: self._create(decision))
            case DeadLetter():
                self._dead_letter(decision)
            case Repark():
                self._repark(decision)
            case _:
                assert_never(decision)

    # -- creates (on a worker thread) --------------------------------------------------
    def _create(self, decision: Create) -> None:
        started = self._clock()
        if self._claims is not None and not self._claimed(decision):
            return
        try:
            result = self._sink.create(decision.body)
        except TransientError as exc:
            self._create_failed(decision, Failure.UNKNOWN, exc, retry_after=exc.retry_after)
            return
        except PermanentError as exc:
            self._create_failed(decision, Failure.PERMANENT, exc, reason=exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - a bug: dead-lettered with its text
            self._create_failed(decision, Failure.UNEXPECTED, exc)
            return
        self._metrics.created(
            decision.size_class, len(decision.order_ids), result.value, self._clock() - started
        )
        log.info(
            "workflow_created",
            workflow=decision.name,
            size_class=decision.size_class,
            orders=len(decision.order_ids),
            result=result.value,
        )
        existed = result is CreateResult.EXISTS

        def remembered(error: BaseException | None) -> None:
            if error is not None:  # the Workflow exists; only the late-redelivery memory is thin
                self._metrics.ledger_failures.inc()
                log.error("ledger_write_failed", workflow=decision.name, error=str(error))
            self._post(Created(decision.name, existed))

        try:
            self._ledger.record(decision.order_ids, remembered)
        except Exception as exc:  # noqa: BLE001 - same as a failed write
            remembered(exc)

    def _claimed(self, decision: Create) -> bool:
        """Claim the batch's orders before the POST; False (and an event) if it may not go."""
        assert self._claims is not None
        first = decision.attempt == 1
        try:
            contested = set(self._claims.claim(decision.order_ids, renew=not first))
        except Exception as exc:  # noqa: BLE001 - nothing created; the engine tries later
            self._metrics.claims.labels("failed").inc()
            log.warning("claim_failed", workflow=decision.name, error=str(exc))
            self._post(NotClaimed(decision.name, (), str(exc)))
            return False
        if first:
            # Read after our claim was written: a Workflow another replica made before it is
            # seen here, or its claim was seen above.
            contested.update(o for o in decision.order_ids if self._contains(o))
        if not contested:
            return True
        self._metrics.claims.labels("contested").inc()
        log.info("orders_contested", workflow=decision.name, orders=sorted(contested))
        self._post(NotClaimed(decision.name, tuple(sorted(contested))))
        return False

    def _create_failed(
        self, decision: Create, failure: Failure, error: BaseException, **extra: Any
    ) -> None:
        detail = f"{type(error).__name__}: {error}" if failure is Failure.UNEXPECTED else str(error)
        self._metrics.create_failures.labels(failure.value).inc()
        log_at = log.warning if failure is Failure.UNKNOWN else log.error
        log_at(
            "workflow_create_failed", workflow=decision.name, failure=failure.value, error=detail
        )
        self._post(CreateFailed(decision.name, failure, detail, **extra))

    # -- publishes (service/copies.py, shared with the router) --------------------------
    def _dead_letter(self, decision: DeadLetter[D]) -> None:
        self.pending_publishes += 1
        self._copies.dead_letter(
            decision, topic=self._dead_letter_topic, done=self._published_later(decision)
        )

    def _repark(self, decision: Repark[D]) -> None:
        delivery = decision.receipt
        attributes = copied_attributes(delivery)
        attributes.update(
            {"reparked_from": str(delivery.message_id), "size_class": decision.size_class}
        )
        log.info("order_reparked", order_id=decision.order_id, size_class=decision.size_class)
        self.pending_publishes += 1
        self._copies.copy(
            decision.receipts,
            topic=self._repark_topic(decision.size_class),
            attributes=attributes,
            done=self._published_later(decision),
        )

    def _published_later(
        self, decision: DeadLetter[D] | Repark[D]
    ) -> Callable[[BaseException | None], None]:
        """Every publish ends in exactly one ``Published`` event, on the loop thread."""
        return lambda error: self._post(Published(decision, error))

    def published(self, event: Published[D]) -> Outcome[D] | None:
        """On the loop thread: a publish settled; a failure becomes the engine's event."""
        self.pending_publishes -= 1
        error = event.error
        if error is None:
            return None
        return PublishFailed(event.decision, str(error), too_large=is_too_large(error))

    # -- the unplanned -----------------------------------------------------------------
    def _unplanned(self, decision: Decision[D], error: Exception) -> None:
        self._metrics.decision_errors.inc()
        log.error("decision_failed", decision=type(decision).__name__, error=repr(error))
        if isinstance(decision, Create):
            self._post(CreateFailed(decision.name, Failure.UNEXPECTED, repr(error)))
        elif isinstance(decision, DeadLetter | Repark):
            self._post(PublishFailed(decision, repr(error)))


class Published(Generic[D]):
    """A publish finished (on the client's thread, or at once if it could not be sent);
    handled on the loop thread."""

    __slots__ = ("decision", "error")

    def __init__(self, decision: DeadLetter[D] | Repark[D], error: BaseException | None) -> None:
        self.decision = decision
        self.error = error
