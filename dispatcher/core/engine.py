"""The dispatch engine: deliveries in, decisions out, on an injected clock.

It owns every order the process holds, from first delivery until its Workflow exists:
open batches, closed batches waiting for admission, and creates in flight. A redelivery of an
order already held joins that order's ticket; one already inside a Workflow is acked at once.
Nothing here blocks or performs I/O; the runner feeds it and carries out its decisions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

from dispatcher.config import Settings
from dispatcher.core.admission import Admit, Caps, Hold, HoldReason, Occupancy, decide
from dispatcher.core.batching import Batch, Batcher
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.clock import Clock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Release, Repark
from dispatcher.core.order import Reason, Rejection, parse_order
from dispatcher.core.ratelimit import TokenBucket, cap_share, share
from dispatcher.core.render import workflow_name

R = TypeVar("R")

AGE_CHECK_SECONDS = 5.0


class ClusterState(Protocol):
    """What the engine needs to know about Workflows that already exist."""

    def contains(self, order_id: str) -> bool: ...

    def live_in_class(self, size_class: str) -> int: ...

    def own_live_in_class(self, size_class: str) -> int: ...

    def objects_total(self) -> int: ...

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None: ...

    def replicas(self) -> int: ...

    def rank(self) -> int: ...


class Engine(Generic[R]):
    def __init__(self, settings: Settings, *, cluster: ClusterState, clock: Clock) -> None:
        self._clock = clock
        self._cluster = cluster
        self._tickets: dict[str, Ticket[R]] = {}
        self._ready: dict[str, deque[Batch[R]]] = {}
        self._in_flight: dict[str, Batch[R]] = {}
        self._in_flight_by_class: dict[str, int] = {}
        self._draining = False
        self._next_age_check = 0.0
        replicas = cluster.replicas()
        self._bucket = TokenBucket(
            rate=share(settings.limits.workflows_per_second, replicas),
            burst=max(1, int(share(settings.limits.burst, replicas))),
            clock=clock,
        )
        self.settings = settings
        self._classifier = Classifier(settings)
        self._batcher: Batcher[R] = Batcher(settings)
        self.apply_limits(settings)

    # -- configuration -----------------------------------------------------------------
    def apply_limits(self, settings: Settings) -> None:
        """Take new limits live (rates, caps); the batch shapes stay as started."""
        self.settings = settings
        self._ready = {c.name: self._ready.get(c.name, deque()) for c in settings.classes}
        self._by_priority = sorted(settings.classes, key=lambda c: -c.priority)
        replicas = self._cluster.replicas()
        self._replicas_seen = replicas
        self._bucket.reconfigure(
            rate=share(settings.limits.workflows_per_second, replicas),
            burst=max(1, int(share(settings.limits.burst, replicas))),
        )

    # -- inputs ------------------------------------------------------------------------
    def receive(self, receipt: R, data: bytes, attributes: Mapping[str, str]) -> list[Decision[R]]:
        parsed = parse_order(data, attributes, max_bytes=self.settings.orders.max_order_bytes)
        if isinstance(parsed, Rejection):
            return [self._dead_letter(receipt, parsed, "validate")]
        order_id = parsed.order_id
        held = self._tickets.get(order_id)
        if held is not None:
            held.receipts.append(receipt)
            return []
        if self._cluster.contains(order_id):
            return [Ack(receipt)]
        if self._draining:
            return [Release(receipt)]
        now = self._clock()
        ticket = self._classifier.ticket(parsed, now=now, receipt=receipt)
        if isinstance(ticket, Rejection):
            return [self._dead_letter(receipt, ticket, "classify")]
        self._tickets[order_id] = ticket
        closed = self._batcher.add(ticket, now)
        if not closed:
            return []  # nothing new to admit; tick() retries held batches
        for batch in closed:
            self._ready[batch.size_class].append(batch)
        return self._admit()

    def tick(self) -> list[Decision[R]]:
        """Close batches whose linger is over and admit what the limits allow."""
        if self._cluster.replicas() != self._replicas_seen:
            self.apply_limits(self.settings)  # a replica came or went: new shares of the rate
        for batch in self._batcher.due(self._clock()):
            self._ready[batch.size_class].append(batch)
        decisions = self._admit()
        now = self._clock()
        if now >= self._next_age_check:
            self._next_age_check = now + AGE_CHECK_SECONDS
            decisions.extend(self._repark_old(now))
        return decisions

    def _repark_old(self, now: float) -> list[Decision[R]]:
        """Batches that waited for admission longer than the lease allows go back upstream."""
        limit = self.settings.pubsub.max_hold_seconds()
        decisions: list[Decision[R]] = []
        for queue in self._ready.values():
            keep: deque[Batch[R]] = deque()
            while queue:
                batch = queue.popleft()
                if now - min(t.received_at for t in batch.tickets) < limit:
                    keep.append(batch)
                    continue
                for ticket in batch.tickets:
                    self._tickets.pop(ticket.order_id, None)
                    decisions.extend(Repark(r, batch.size_class) for r in ticket.receipts)
            queue.extend(keep)
        return decisions

    def created(self, name: str) -> list[Decision[R]]:
        """The Workflow exists (created, or 409: it was already there): ack every delivery."""
        batch = self._finish(name)
        self._cluster.record_created(name, batch.size_class, batch.order_ids)
        return [Ack(r) for r in batch.receipts()]

    def failed_transiently(self, name: str) -> list[Decision[R]]:
        """Retries are exhausted: give every delivery back to Pub/Sub."""
        return [Release(r) for r in self._finish(name).receipts()]

    def rejected(self, name: str, reason: Reason, detail: str) -> list[Decision[R]]:
        """The API refused the Workflow for good: dead-letter each order with its reason."""
        batch = self._finish(name)
        return [
            DeadLetter(r, reason, detail, "create", t.order_id)
            for t in batch.tickets
            for r in t.receipts
        ]

    def drain(self) -> list[Decision[R]]:
        """Shutdown: stop taking orders, send what may be sent, release the rest."""
        self._draining = True
        for batch in self._batcher.flush():
            self._ready[batch.size_class].append(batch)
        decisions = self._admit()
        for queue in self._ready.values():
            while queue:
                batch = queue.popleft()
                for ticket in batch.tickets:
                    self._tickets.pop(ticket.order_id, None)
                decisions.extend(Release(r) for r in batch.receipts())
        return decisions

    # -- observations ------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        deadline = self._batcher.next_deadline()
        if any(self._ready.values()):
            wait = self._bucket.wait_time()
            soon = self._clock() + max(wait, 0.05)
            deadline = soon if deadline is None else min(deadline, soon)
        return deadline

    def held_orders(self) -> dict[str, int]:
        counts = {c.name: len(self._batcher[c.name]) for c in self.settings.classes}
        for name, queue in self._ready.items():
            counts[name] = counts.get(name, 0) + sum(len(b.tickets) for b in queue)
        return counts

    def in_flight(self) -> int:
        return len(self._in_flight)

    def idle(self) -> bool:
        return not self._tickets

    # -- internals ---------------------------------------------------------------------
    def _admit(self) -> list[Decision[R]]:
        decisions: list[Decision[R]] = []
        limits = self.settings.limits
        cluster = self._cluster
        replicas, rank = cluster.replicas(), cluster.rank()
        for size_class in self._by_priority:
            name = size_class.name
            queue = self._ready[name]
            while queue:
                verdict: Admit | Hold | None = self._check_share(
                    name, size_class.max_live_workflows, replicas, rank
                )
                if verdict is None:
                    occupancy = Occupancy(
                        live_in_class=cluster.live_in_class(name)
                        + self._in_flight_by_class.get(name, 0),
                        objects_total=cluster.objects_total() + len(self._in_flight),
                    )
                    caps = Caps(size_class.max_live_workflows, limits.max_workflow_objects)
                    verdict = decide(occupancy, caps, self._bucket)
                if isinstance(verdict, Hold):
                    if verdict.reason is HoldReason.CLASS_CAP:
                        break  # this class waits; others may still go
                    return decisions
                if isinstance(verdict, Admit):
                    decisions.append(self._start(queue.popleft()))
        return decisions

    def _check_share(self, name: str, cap: int, replicas: int, rank: int) -> Hold | None:
        """With several replicas, each keeps to its share of the class cap (see docs)."""
        if replicas <= 1:
            return None
        own = self._cluster.own_live_in_class(name) + self._in_flight_by_class.get(name, 0)
        if own >= cap_share(cap, replicas, rank):
            return Hold(HoldReason.CLASS_CAP, None)
        return None

    def _start(self, batch: Batch[R]) -> Create[R]:
        name = workflow_name(self.settings.workflow_name_prefix, batch.size_class, batch.order_ids)
        self._in_flight[name] = batch
        self._in_flight_by_class[batch.size_class] = (
            self._in_flight_by_class.get(batch.size_class, 0) + 1
        )
        return Create(batch, name)

    def _finish(self, name: str) -> Batch[R]:
        batch = self._in_flight.pop(name)
        self._in_flight_by_class[batch.size_class] -= 1
        for ticket in batch.tickets:
            self._tickets.pop(ticket.order_id, None)
        return batch

    def _dead_letter(self, receipt: R, rejection: Rejection, stage: str) -> DeadLetter[R]:
        return DeadLetter(receipt, rejection.reason, rejection.detail, stage, rejection.order_id)


class LocalClusterState:
    """In-memory twin of the cluster view: remembers what this process created.

    Used by ``dispatcher plan``-like runs and unit tests; the service uses the watch-backed
    view from the Kubernetes adapter. ``finish`` marks a Workflow completed (no longer live).
    """

    def __init__(self, replicas: int = 1) -> None:
        self._live: dict[str, str] = {}
        self._done: set[str] = set()
        self._orders: set[str] = set()
        self._replicas = replicas

    def contains(self, order_id: str) -> bool:
        return order_id in self._orders

    def live_in_class(self, size_class: str) -> int:
        return sum(1 for c in self._live.values() if c == size_class)

    def objects_total(self) -> int:
        return len(self._live) + len(self._done)

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None:
        if name not in self._done:
            self._live[name] = size_class
        self._orders.update(order_ids)

    def finish(self, name: str) -> None:
        if self._live.pop(name, None) is not None:
            self._done.add(name)

    def forget(self, name: str) -> None:
        self._live.pop(name, None)
        self._done.discard(name)

    def own_live_in_class(self, size_class: str) -> int:
        return self.live_in_class(size_class)

    def replicas(self) -> int:
        return self._replicas

    def rank(self) -> int:
        return 0
