"""Pub/Sub as the simulated dispatcher sees it: published orders, flow control, re-parks.

Why its own module: the two routings hold orders back differently, and a simulation that got
this wrong would re-park far too much or far too little. ``direct``: one subscription, at most
``pubsub.max_messages`` delivered and not yet acked. ``class_topics``: the router sends each
valid order to its class's topic (modelled by the core's own classifier on the input size;
an invalid line goes to the first class, whose engine dead-letters it), and each class's
subscription holds at most the class's ``hold_budget``. A re-parked copy is published again
to the topic it came from, behind what is already there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from dispatcher.core.classify import Classifier
from dispatcher.core.settings import Settings
from dispatcher.simulate.swarm import Arrival, StepFlags, Swarm

#: (index, arrival time, input bytes, line, stream, the order's own step flags): what a
#: delivery carries through the engine.
Receipt = tuple[int, float, int, bytes, str, StepFlags]
DIRECT = ""


class Upstream:
    def __init__(self, swarm: Swarm, *, settings: Settings, rate: float | None) -> None:
        self.swarm = swarm
        self.class_topics = settings.pubsub.routing == "class_topics"
        if self.class_topics:
            # A paused or draining class's stream is closed: its backlog stays in Pub/Sub.
            self.budget = {
                c.name: c.effective_hold_budget() if c.state == "active" else 0
                for c in settings.classes
            }
        else:
            self.budget = {DIRECT: settings.pubsub.max_messages}
        self.queues: dict[str, deque[Receipt]] = {name: deque() for name in self.budget}
        self.held = dict.fromkeys(self.budget, 0)
        self._classify = Classifier(settings).size_class_for
        self._first = settings.classes[0].name
        self._rate = rate
        self._credit = 0.0
        self._credit_at = 0.0
        self._arrivals: Iterator[Arrival] = iter(())
        self._next: Arrival | None = None
        self.published = 0  # orders of the swarm published so far (re-parks not counted)

    def start(self) -> None:
        self._arrivals = self.swarm.arrivals()
        self._next = next(self._arrivals, None)

    # -- publishing ------------------------------------------------------------------------
    def _route(self, now: float) -> None:
        """class_topics: the router moves what is published by ``now`` to its class's topic."""
        arrival = self._next
        while arrival is not None and arrival.at <= now:
            size_class = self._classify(arrival.size_bytes) if arrival.size_bytes else None
            stream = size_class.name if size_class is not None else self._first
            self.queues[stream].append(
                (
                    self.published,
                    arrival.at,
                    arrival.size_bytes,
                    arrival.line,
                    stream,
                    arrival.steps,
                )
            )
            self.published += 1
            arrival = next(self._arrivals, None)
        self._next = arrival

    def repark(self, receipt: Receipt) -> None:
        self.queues[receipt[4]].append(receipt)

    def settled(self, receipt: Receipt, deliveries: int) -> None:
        self.held[receipt[4]] -= deliveries

    # -- delivering ------------------------------------------------------------------------
    def deliveries(self, now: float) -> Iterator[Receipt]:
        """Every message flow control lets through now; room is checked before each one, so
        acks that come back while the engine takes a delivery make room for the next."""
        if self.class_topics:
            self._route(now)
        if self._rate is not None:
            self._credit = self._credit_now(now)
            self._credit_at = now
        for stream, queue in self.queues.items():
            while self.held[stream] < self.budget[stream]:
                if self._rate is not None and self._credit < 1:
                    return
                receipt = self._pop(stream, queue, now)
                if receipt is None:
                    break
                self.held[stream] += 1
                if self._rate is not None:
                    self._credit -= 1
                yield receipt

    def _pop(self, stream: str, queue: deque[Receipt], now: float) -> Receipt | None:
        if stream == DIRECT:  # published in order, routed by nobody: read the swarm lazily
            arrival = self._next
            if arrival is not None and arrival.at <= now:
                self._next = next(self._arrivals, None)
                self.published += 1
                index = self.published - 1
                return (index, arrival.at, arrival.size_bytes, arrival.line, stream, arrival.steps)
        return queue.popleft() if queue else None

    def next_time(self, now: float) -> float | None:
        """When a delivery may happen next (None: nothing to deliver, or no room anywhere)."""
        when: float | None = None
        for stream, queue in self.queues.items():
            if self.held[stream] >= self.budget[stream]:
                continue
            if queue:
                when = now
                break
            if self._next is not None and (stream == DIRECT or self.class_topics):
                when = self._next.at if when is None else min(when, self._next.at)
        if when is None:
            return None
        when = max(now, when)
        if self._rate is not None and self._credit_now(now) < 1:
            when = max(when, now + (1 - self._credit_now(now)) / self._rate)
        return when

    def _credit_now(self, now: float) -> float:
        rate = self._rate or 0.0
        return min(rate, self._credit + (now - self._credit_at) * rate)

    def backlog(self, now: float) -> int:
        """Published and not yet acked: waiting upstream or held by the dispatcher."""
        waiting = self.swarm.arrived(now) - self.published + sum(map(len, self.queues.values()))
        return waiting + sum(self.held.values())
