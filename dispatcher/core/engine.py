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
from typing import TypeVar

from dispatcher.core.admission import HoldReason
from dispatcher.core.batching import Batch
from dispatcher.core.clock import Clock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Repark
from dispatcher.core.flights import (
    AGE_CHECK_SECONDS,
    EngineConfig,
    _InFlight,
)
from dispatcher.core.holding import Holding
from dispatcher.core.intake import Intake, Refused
from dispatcher.core.limits import Limits, LimitsChanged
from dispatcher.core.outcomes import (
    Created,
    CreateFailed,
    NotClaimed,
    Outcome,
)
from dispatcher.core.ports import ClusterState, Members
from dispatcher.core.render import render_workflow, workflow_name
from dispatcher.core.settings import Settings

R = TypeVar("R")


class Engine(Holding[R]):
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
        super().__init__(
            settings,
            cluster=cluster,
            members=members,
            clock=clock,
            config=config,
            message_id=message_id,
        )
        self._intake = Intake(settings)
        self._by_priority = [c.name for c in sorted(settings.classes, key=lambda c: -c.priority)]
        self._next_age_check = 0.0
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
        """Take new live limits; nothing else of the configuration changes.

        A class that stops being active lets go of what it holds: paused, all of it is
        re-parked; draining, what the limits admit now is created and the rest re-parked.
        (The service closes the class's stream first, so no copy comes back here.)
        """
        before = self.admission.limits
        self.admission.reconfigure(event.limits)
        decisions: list[Decision[R]] = []
        for name in self._ready:
            state = event.limits.state(name)
            if state != "active" and before.state(name) == "active":
                decisions.extend(self._let_go(name, create=state == "draining"))
        return decisions + self._admit()

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

    def _let_go(self, name: str, *, create: bool) -> list[Decision[R]]:
        queue = self._ready[name]
        queue.extend(self._batcher[name].flush())
        decisions = self._admit() if create else []
        while queue:
            decisions.extend(self._repark_batch(queue.popleft()))
        for order_id in [o for o in self._waiting if self._tickets[o].size_class == name]:
            decisions.extend(self._repark_waiting(order_id))
        return decisions

    # -- observations ------------------------------------------------------------------
    def next_deadline(self, *, poll: bool = True) -> float | None:
        """When ``tick`` has something to do. With ``poll`` (the service) batches waiting for
        admission are looked at again every 50 ms (or when a rate token is due); a caller that
        ticks after every change of the cluster itself (the simulator) passes ``poll=False``."""
        deadline = self._batcher.next_deadline()
        pending = [f.retry_at for f in self._in_flight.values() if f.retry_at is not None]
        pending.extend(d.due for d in self._deferred)
        pending.extend(self._waiting.values())
        if poll and any(self._ready.values()):
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
                    if hold in (HoldReason.CLASS_CAP, HoldReason.PAUSED):
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
