"""What the engine holds after admission, and how it lets go: outcomes, retries, withdrawals.

The engine (``core/engine.py``) takes deliveries in and admits batches; this base class
owns the state both halves share (tickets, ready queues, creates in flight, deferred
publishes, orders withdrawn in favour of another replica's claim) and turns each outcome of
a create or publish into what follows: acks, a retry under the same name, dead letters, a
pause, or a re-park of whatever has been held longer than its lease allows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from dispatcher.core.admission import Admission
from dispatcher.core.batching import Batch, Batcher
from dispatcher.core.claims import pause_seconds
from dispatcher.core.classify import Ticket
from dispatcher.core.clock import Clock
from dispatcher.core.decisions import Ack, DeadLetter, Decision, Repark
from dispatcher.core.flights import (
    PUBLISH_ATTEMPTS,
    EngineConfig,
    _Deferred,
    _InFlight,
    backoff,
)
from dispatcher.core.limits import limits_of
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import CreateFailed, Failure, NotClaimed, PublishFailed
from dispatcher.core.ports import ClusterState, Members
from dispatcher.core.settings import Settings

R = TypeVar("R")


class Holding(Generic[R]):
    def __init__(
        self,
        settings: Settings,
        *,
        cluster: ClusterState,
        members: Members,
        clock: Clock,
        config: EngineConfig | None = None,
        message_id: Callable[[R], str] | None = None,
    ) -> None:
        self._settings = settings
        self._config = config or EngineConfig()
        self._cluster = cluster
        self._clock = clock
        self._message_id = message_id
        self._batcher: Batcher[R] = Batcher(settings)
        self._tickets: dict[str, Ticket[R]] = {}
        self._ready: dict[str, deque[Batch[R]]] = {c.name: deque() for c in settings.classes}
        self._in_flight: dict[str, _InFlight[R]] = {}
        self._deferred: list[_Deferred[R]] = []
        #: Orders left to another replica's claim (order id -> when to batch it again), and
        #: how often each order held was withdrawn so far.
        self._waiting: dict[str, float] = {}
        self._withdrawals: dict[str, int] = {}
        self._draining = False
        self.admission = Admission(
            limits_of(settings),
            cluster=cluster,
            members=members,
            clock=clock,
            identity=self._config.identity,
        )

    def _admit(self) -> list[Decision[R]]:
        raise NotImplementedError  # the engine's admission

    # -- outcomes ----------------------------------------------------------------------
    def _created(self, name: str) -> list[Decision[R]]:
        flight = self._in_flight.pop(name, None)
        if flight is None:
            return []
        batch = flight.batch
        self._cluster.record_created(name, batch.size_class, batch.order_ids)
        return [Ack(tuple(self._release(t)), name, batch.size_class) for t in batch.tickets]

    def _create_failed(self, event: CreateFailed) -> list[Decision[R]]:
        flight = self._in_flight.get(event.name)
        if flight is None:
            return []
        if event.failure is Failure.UNKNOWN:
            # The Workflow may exist: ask again under the same name until the API answers.
            flight.retry_at = self._clock() + max(backoff(flight.attempts), event.retry_after or 0)
            return []
        del self._in_flight[event.name]
        reason = event.reason if event.failure is Failure.PERMANENT else Reason.INTERNAL_ERROR
        return [
            DeadLetter(tuple(self._release(t)), reason, event.detail, "create", t.order_id)
            for t in flight.batch.tickets
        ]

    def _not_claimed(self, event: NotClaimed) -> list[Decision[R]]:
        """Nothing was created. Contested orders wait for the other replica's Workflow; the
        rest go back to the front of their queue (a new batch and name: safe, as no POST was
        made). If the claim itself failed, every order waits a pause and is batched again."""
        flight = self._in_flight.pop(event.name, None)
        if flight is None:
            return []
        self.admission.refund()
        batch = flight.batch
        if self._draining:  # no second claim now: the copies go back upstream
            return self._repark_batch(batch)
        contested = set(event.contested) or set(batch.order_ids)
        now = self._clock()
        rest = []
        for ticket in batch.tickets:
            order_id = ticket.order_id
            if order_id in contested:
                withdrawals = self._withdrawals.get(order_id, 0) + 1
                self._withdrawals[order_id] = withdrawals
                self._waiting[order_id] = now + pause_seconds(
                    self._config.identity, order_id, withdrawals
                )
            else:
                rest.append(ticket)
        if rest:
            self._ready[batch.size_class].appendleft(
                Batch(batch.size_class, tuple(rest), batch.opened_at)
            )
        # The create may have waited long for a worker: what is now past its hold goes back.
        return self._repark_old(now) + self._admit()

    def _due_waiting(self, now: float) -> list[Decision[R]]:
        """Withdrawn orders: acked once in a Workflow; when their pause ends, a batch of their
        own (rare: not worth a linger) or, held too long by now, re-parked."""
        decisions: list[Decision[R]] = []
        contains = self._cluster.contains
        limit = self._settings.pubsub.max_hold_seconds()
        for order_id, due in list(self._waiting.items()):
            ticket = self._tickets[order_id]
            if contains(order_id):
                del self._waiting[order_id]
                decisions.append(Ack(tuple(self._release(ticket))))
            elif now - ticket.received_at >= limit:
                decisions.extend(self._repark_waiting(order_id))
            elif due <= now:
                del self._waiting[order_id]
                self._ready[ticket.size_class].append(Batch(ticket.size_class, (ticket,), now))
        return decisions

    def _repark_waiting(self, order_id: str) -> list[Decision[R]]:
        self._waiting.pop(order_id, None)
        ticket = self._tickets[order_id]
        return [Repark(tuple(self._release(ticket)), ticket.size_class, order_id)]

    def _publish_failed(self, event: PublishFailed[R]) -> list[Decision[R]]:
        decision = event.decision
        if event.too_large or decision.attempt >= PUBLISH_ATTEMPTS:
            return []  # left to Pub/Sub: redelivered after its lease, or dead-lettered by it
        again = replace(decision, attempt=decision.attempt + 1)
        self._deferred.append(_Deferred(self._clock() + backoff(decision.attempt), again))
        return []

    def _due_retries(self, now: float) -> list[Decision[R]]:
        decisions: list[Decision[R]] = []
        for name, flight in list(self._in_flight.items()):
            if flight.retry_at is None or flight.retry_at > now:
                continue
            flight.retry_at = None
            if all(self._cluster.contains(o) for o in flight.create.order_ids):
                # The watch (or the ledger) has seen them inside a Workflow meanwhile: done.
                # Never POST again then: Argo's TTL may have deleted it, and a second POST
                # of the same name would run the orders twice.
                decisions.extend(self._created(name))
                continue
            flight.attempts += 1
            decisions.append(replace(flight.create, attempt=flight.attempts))
        if self._deferred:
            decisions.extend(d.decision for d in self._deferred if d.due <= now)
            self._deferred = [d for d in self._deferred if d.due > now]
        return decisions

    # -- holding too long --------------------------------------------------------------
    def _repark_old(self, now: float) -> list[Decision[R]]:
        """Batches that waited for admission longer than the lease allows go back upstream."""
        limit = self._settings.pubsub.max_hold_seconds()
        decisions: list[Decision[R]] = []
        for queue in self._ready.values():
            # Tickets join a batch in the order they arrive (and keep it when a batch is cut
            # down), so its first ticket is its oldest: one look per batch, not per order.
            if not any(now - batch.tickets[0].received_at >= limit for batch in queue):
                continue
            keep: deque[Batch[R]] = deque()
            while queue:
                batch = queue.popleft()
                if now - batch.tickets[0].received_at < limit:
                    keep.append(batch)
                else:
                    decisions.extend(self._repark_batch(batch))
            queue.extend(keep)
        for order_id in list(self._waiting):
            if now - self._tickets[order_id].received_at >= limit:
                decisions.extend(self._repark_waiting(order_id))
        return decisions

    def _repark_batch(self, batch: Batch[R]) -> list[Decision[R]]:
        return [
            Repark(tuple(self._release(t)), batch.size_class, t.order_id) for t in batch.tickets
        ]

    def _release(self, ticket: Ticket[R]) -> list[R]:
        """The engine stops holding ``ticket``; its deliveries go with the decision."""
        if self._tickets.get(ticket.order_id) is ticket:
            del self._tickets[ticket.order_id]
            if self._withdrawals:
                self._withdrawals.pop(ticket.order_id, None)
        return ticket.receipts
