"""The dispatch engine: deliveries and outcomes in, decisions out, on an injected clock.

It owns every order the process holds, from first delivery until its Workflow exists: open
batches, closed batches waiting for admission, and creates in flight (including creates whose
answer was lost, which are retried under the same name, never re-batched). A redelivery of an
order already held joins that order's ticket; one already inside a Workflow (or in the dedupe
ledger) is acked at once, and the same check runs again just before each create. Orders another
replica claims (``core/claims.py``) wait here until its Workflow shows up, or are batched
again after a pause. Nothing here blocks or performs I/O: the loop feeds it and the executor
carries out its decisions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Generic, TypeVar

from dispatcher.core.admission import Admission, HoldReason
from dispatcher.core.batching import Batch, Batcher
from dispatcher.core.claims import pause_seconds
from dispatcher.core.classify import Ticket
from dispatcher.core.clock import Clock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Repark
from dispatcher.core.flights import (
    AGE_CHECK_SECONDS,
    PUBLISH_ATTEMPTS,
    EngineConfig,
    _Deferred,
    _InFlight,
    backoff,
)
from dispatcher.core.intake import Intake, Refused
from dispatcher.core.limits import Limits, LimitsChanged, limits_of
from dispatcher.core.order import Reason
from dispatcher.core.outcomes import (
    Created,
    CreateFailed,
    Failure,
    NotClaimed,
    Outcome,
    PublishFailed,
)
from dispatcher.core.ports import ClusterState, Members
from dispatcher.core.render import render_workflow, workflow_name
from dispatcher.core.settings import Settings

R = TypeVar("R")


class Engine(Generic[R]):
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
        self._intake = Intake(settings)
        self._batcher: Batcher[R] = Batcher(settings)
        self._tickets: dict[str, Ticket[R]] = {}
        self._ready: dict[str, deque[Batch[R]]] = {c.name: deque() for c in settings.classes}
        self._by_priority = [c.name for c in sorted(settings.classes, key=lambda c: -c.priority)]
        self._in_flight: dict[str, _InFlight[R]] = {}
        self._deferred: list[_Deferred[R]] = []
        #: Orders left to another replica's claim (order id -> when to batch it again), and
        #: how often each order held was withdrawn so far.
        self._waiting: dict[str, float] = {}
        self._withdrawals: dict[str, int] = {}
        self._draining = False
        self._next_age_check = 0.0
        self.admission = Admission(
            limits_of(settings),
            cluster=cluster,
            members=members,
            clock=clock,
            identity=self._config.identity,
        )
        self.last_hold: dict[str, HoldReason | None] = {name: None for name in self._ready}

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def limits(self) -> Limits:
        return self.admission.limits

    # -- inputs ------------------------------------------------------------------------
    def receive(self, receipt: R, data: bytes, attributes: Mapping[str, str]) -> list[Decision[R]]:
        ticket = self._intake(data, attributes, receipt=receipt, now=self._clock())
        if isinstance(ticket, Refused):
            rejection = ticket.rejection
            return [
                DeadLetter(
                    (receipt,),
                    rejection.reason,
                    rejection.detail,
                    ticket.stage,
                    rejection.order_id,
                )
            ]
        order_id = ticket.order_id
        held = self._tickets.get(order_id)
        if held is not None:
            held.receipts.append(receipt)
            return []
        if self._cluster.contains(order_id):
            return [Ack((receipt,))]
        if self._draining:
            return [Repark((receipt,), ticket.size_class, order_id)]
        self._tickets[order_id] = ticket
        closed = self._batcher.add(ticket, ticket.received_at)
        if not closed:
            return []  # nothing new to admit; tick() retries the batches that wait
        for batch in closed:
            self._ready[batch.size_class].append(batch)
        return self._admit()

    def limits_changed(self, event: LimitsChanged) -> list[Decision[R]]:
        """Take new live limits; nothing else of the configuration changes."""
        self.admission.reconfigure(event.limits)
        return self._admit()

    def tick(self) -> list[Decision[R]]:
        """Close batches whose linger is over, retry what is due, admit what limits allow."""
        now = self._clock()
        for batch in self._batcher.due(now):
            self._ready[batch.size_class].append(batch)
        decisions: list[Decision[R]] = self._due_retries(now)
        if self._waiting:
            decisions.extend(self._due_waiting(now))
        decisions.extend(self._admit())
        if now >= self._next_age_check:
            self._next_age_check = now + AGE_CHECK_SECONDS
            decisions.extend(self._repark_old(now))
        return decisions

    def outcome(self, event: Outcome[R]) -> list[Decision[R]]:
        """A decision was carried out (or failed): settle, retry or dead-letter."""
        if isinstance(event, Created):
            return self._created(event.name)
        if isinstance(event, CreateFailed):
            return self._create_failed(event)
        if isinstance(event, NotClaimed):
            return self._not_claimed(event)
        return self._publish_failed(event)

    def drain(self) -> list[Decision[R]]:
        """Shutdown: send what may be sent; re-park the rest (no nack, no attempt spent)."""
        self._draining = True
        for batch in self._batcher.flush():
            self._ready[batch.size_class].append(batch)
        decisions = self._admit()
        for queue in self._ready.values():
            while queue:
                decisions.extend(self._repark_batch(queue.popleft()))
        for order_id in list(self._waiting):
            decisions.extend(self._repark_waiting(order_id))
        return decisions

    # -- observations ------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        deadline = self._batcher.next_deadline()
        pending = [f.retry_at for f in self._in_flight.values() if f.retry_at is not None]
        pending.extend(d.due for d in self._deferred)
        pending.extend(self._waiting.values())
        if any(self._ready.values()):
            pending.append(self._clock() + max(self.admission.rate_wait(), 0.05))
        for when in pending:
            deadline = when if deadline is None else min(deadline, when)
        return deadline

    def held_orders(self) -> dict[str, int]:
        counts = {name: len(self._batcher[name]) for name in self._ready}
        for name, queue in self._ready.items():
            counts[name] += sum(len(b.tickets) for b in queue)
        for order_id in self._waiting:
            counts[self._tickets[order_id].size_class] += 1
        return counts

    def in_flight(self) -> int:
        return len(self._in_flight)

    def in_flight_by_class(self) -> dict[str, int]:
        counts = dict.fromkeys(self._ready, 0)
        for flight in self._in_flight.values():
            counts[flight.batch.size_class] += 1
        return counts

    def live_by_class(self) -> dict[str, int]:
        """Live Workflows of each class as the cluster view counts them (every replica's)."""
        return {n: sum(self._cluster.live_by_replica(n).values()) for n in self._ready}

    def settled_everything(self) -> bool:
        """Draining is complete: no create in flight and no publish waiting for a retry."""
        return not self._in_flight and not self._deferred

    def idle(self) -> bool:
        return not self._tickets

    # -- admission ---------------------------------------------------------------------
    def _admit(self) -> list[Decision[R]]:
        decisions: list[Decision[R]] = []
        in_flight = self.in_flight_by_class()
        for name in self._by_priority:
            queue = self._ready[name]
            self.last_hold[name] = None
            while queue:
                if len(self._in_flight) >= self._config.max_in_flight:
                    self.last_hold[name] = HoldReason.IN_FLIGHT
                    return decisions
                hold = self.admission.check(name, in_flight[name], len(self._in_flight))
                if hold is not None:
                    self.last_hold[name] = hold
                    if hold is HoldReason.CLASS_CAP:
                        break  # this class waits; others may still go
                    return decisions
                # Only now, with the limits passed: the re-check costs a look-up per order.
                batch = self._recheck(queue, decisions)
                if batch is None:
                    self.admission.refund()  # all of it was in a Workflow already
                    continue
                queue.popleft()
                decisions.append(self._start(batch))
                in_flight[name] += 1
        return decisions

    def _recheck(self, queue: deque[Batch[R]], decisions: list[Decision[R]]) -> Batch[R] | None:
        """Just before a create: orders another replica has put into a Workflow are acked."""
        batch = queue[0]
        contains = self._cluster.contains
        if not any(contains(t.order_id) for t in batch.tickets):
            return batch
        rest = []
        for ticket in batch.tickets:
            if contains(ticket.order_id):
                decisions.append(Ack(tuple(self._release(ticket))))
            else:
                rest.append(ticket)
        if not rest:
            queue.popleft()
            return None
        queue[0] = Batch(batch.size_class, tuple(rest), batch.opened_at)
        return queue[0]

    def _start(self, batch: Batch[R]) -> Create:
        settings = self._settings
        name = workflow_name(settings.workflow_name_prefix, batch.size_class, batch.order_ids)
        describe = self._message_id
        body = render_workflow(
            batch,
            settings=settings,
            message_ids=None if describe is None else [describe(r) for r in batch.receipts()],
            replica=self._config.identity or None,
        )
        create = Create(name, body, batch.size_class, batch.order_ids)
        self._in_flight[name] = _InFlight(batch, create)
        return create

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
            keep: deque[Batch[R]] = deque()
            while queue:
                batch = queue.popleft()
                if now - min(t.received_at for t in batch.tickets) < limit:
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
