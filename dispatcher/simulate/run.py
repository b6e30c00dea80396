"""The discrete-event loop: the service's real engine on a simulated clock.

Why the real engine: a simulation of the dispatcher that reimplemented batching, admission
and the rate limit would drift from the service the first time either changed. Here the
engine is :class:`dispatcher.core.engine.Engine` itself, fed deliveries and outcomes exactly
as the service's loop feeds it, with a :class:`~dispatcher.core.clock.FakeClock` that jumps
from event to event. The simulation carries out its decisions (the executor's part): a create
lands after the API's latency, an ack frees Pub/Sub flow control, a re-park republishes.
Everything after the create (the controller, pods, nodes) is :mod:`dispatcher.simulate.nodes`.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial

from dispatcher.core.admission import HoldReason
from dispatcher.core.clock import FakeClock
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Repark
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.core.outcomes import Created
from dispatcher.core.settings import Settings
from dispatcher.simulate.model import ClusterModel, quantity
from dispatcher.simulate.nodes import Lane, Node, PoolState
from dispatcher.simulate.results import Results, Sample
from dispatcher.simulate.swarm import Arrival, Swarm
from dispatcher.simulate.workflows import REPLICA, SimulatedWorkflows, Workflow

GIB = 2**30
#: (index, arrival time, input bytes, line): what a delivery carries through the engine.
Receipt = tuple[int, float, int, bytes]


class _Members:
    def members(self) -> list[str]:
        return [REPLICA]

    def settled(self) -> bool:
        return True


class Simulation:
    """One run: a swarm, a dispatcher configuration and a cluster model; :meth:`run` once."""

    def __init__(
        self, swarm: Swarm, *, settings: Settings, model: ClusterModel, seed: int = 1
    ) -> None:
        self.swarm, self.settings, self.model = swarm, settings, model
        self.clock = FakeClock(start=0.0)
        self.cluster = SimulatedWorkflows([c.name for c in settings.classes])
        self.engine: Engine[Receipt] = Engine(
            settings,
            cluster=self.cluster,
            members=_Members(),
            clock=self.clock,
            config=EngineConfig(identity=REPLICA, max_in_flight=settings.service.create_workers),
        )
        self.pools = {p.name: PoolState(p) for p in model.pools}
        self.results = Results(classes=[c.name for c in settings.classes], pools=list(self.pools))
        self._rng = random.Random(seed)  # noqa: S311 - reproducible simulation
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._shapes = {
            c.name: (quantity(c.cpu), quantity(c.memory) / GIB, c.node_pool, c.fallback_node_pool)
            for c in settings.classes
        }
        for name, (_cpu, _mem, pool, fallback) in self._shapes.items():
            model.pool(pool)  # every pool the classes name must be modelled
            if fallback:
                model.pool(fallback)
            if name not in model.steps:
                raise KeyError(f"cluster model {model.name!r} has no steps for class {name!r}")
        self._arrivals: Iterator[Arrival] = iter(())
        self._next: Arrival | None = None
        self._index = 0
        self._reparked: deque[Receipt] = deque()
        self._held = 0
        self._credit = 0.0
        self._credit_at = 0.0
        self._controller_free = 0.0
        self._scanning = False
        self._last_done = 0.0
        self.on_event: Callable[[Simulation], None] | None = None

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Results:
        self._arrivals = self.swarm.arrivals()
        self._next = next(self._arrivals, None)
        self._schedule(0.0, self._scan)
        self._scanning = True
        while True:
            self._settle()
            when = self._next_time()
            if when is None:
                break
            self._advance(when)
            while self._events and self._events[0][0] <= when:
                _at, _seq, action = heapq.heappop(self._events)
                action()
            if self.on_event is not None:
                self.on_event(self)
        return self._finish()

    def _advance(self, when: float) -> None:
        self.clock.now = max(self.clock.now, when)
        self.cluster.at(self.clock.now)

    def _settle(self) -> None:
        """Deliver what flow control allows and tick until the engine has nothing to add."""
        self._carry_out(self.engine.tick())
        while self._deliver():
            self._carry_out(self.engine.tick())

    def _next_time(self) -> float | None:
        times = []
        if self._events:
            times.append(self._events[0][0])
        # The service polls batches held at a cap every 50 ms; here a cap can only open at
        # an event (a Workflow finishing, an object deleted), after which the loop ticks
        # anyway, so only a wait for a rate token needs the poll.
        rate_held = HoldReason.RATE in self.engine.last_hold.values()
        deadline = self.engine.next_deadline(poll=rate_held)
        if deadline is not None:
            times.append(deadline)
        if self._held < self.settings.pubsub.max_messages:
            upstream = self._upstream_at()
            if upstream is not None:
                times.append(upstream)
        return min(times) if times else None

    def _schedule(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (at, next(self._seq), action))

    # -- Pub/Sub ---------------------------------------------------------------------------
    def _upstream_at(self) -> float | None:
        """When the next delivery can happen (flow control permitting)."""
        now = self.clock.now
        if self._reparked:
            at = now
        elif self._next is not None:
            at = max(now, self._next.at)
        else:
            return None
        rate = self.model.pubsub_deliveries_per_second
        if rate is not None and self._credit_now(rate) < 1:
            at = max(at, now + (1 - self._credit_now(rate)) / rate)
        return at

    def _credit_now(self, rate: float) -> float:
        now = self.clock.now
        return min(rate, self._credit + (now - self._credit_at) * rate)

    def _deliver(self) -> bool:
        """Hand the engine every message that is published and fits flow control."""
        limit = self.settings.pubsub.max_messages
        rate = self.model.pubsub_deliveries_per_second
        now = self.clock.now
        room = limit - self._held
        if rate is not None:
            self._credit = self._credit_now(rate)
            self._credit_at = now
            room = min(room, int(self._credit))
        delivered = 0
        receive, carry_out = self.engine.receive, self._carry_out
        while delivered < room:
            # A re-parked copy is the newest message: what was published before it goes first.
            if self._next is not None and self._next.at <= now:
                arrival = self._next
                receipt = (self._index, arrival.at, arrival.size_bytes, arrival.line)
                self._index += 1
                self._next = next(self._arrivals, None)
            elif self._reparked:
                receipt = self._reparked.popleft()
            else:
                break
            delivered += 1
            self._held += 1
            carry_out(receive(receipt, receipt[3], {}))
        if rate is not None:
            self._credit -= delivered
        return delivered > 0

    # -- the executor's part ---------------------------------------------------------------
    def _carry_out(self, decisions: list[Decision[Receipt]]) -> None:
        for decision in decisions:
            if isinstance(decision, Ack):
                self._held -= len(decision.receipts)
                if decision.workflow is not None:
                    orders = self.cluster.by_name[decision.workflow].orders
                    receipt = decision.receipts[0]
                    orders.append((receipt[1], receipt[2]))
                else:
                    self.results.duplicates += len(decision.receipts)
            elif isinstance(decision, Create):
                self._schedule(
                    self.clock.now + self.model.controller.create_seconds,
                    partial(self._created, decision.name),
                )
            elif isinstance(decision, DeadLetter):
                self._held -= len(decision.receipts)
                self.results.dead_lettered += 1
            elif isinstance(decision, Repark):
                self._held -= len(decision.receipts)
                self._reparked.append(decision.receipts[0])
                self.results.reparked += 1

    def _created(self, name: str) -> None:
        self._carry_out(self.engine.outcome(Created(name)))
        workflow = self.cluster.by_name[name]
        rate = self.model.controller.workflows_per_second
        start = max(self.clock.now, self._controller_free)
        self._controller_free = start + 1 / rate
        self._schedule(start, lambda: self._start(workflow))
        self._wake_scanner()

    # -- Argo and the nodes ----------------------------------------------------------------
    def _start(self, workflow: Workflow) -> None:
        steps = self.model.steps[workflow.size_class]
        cpu, memory, pool, _fallback = self._shapes[workflow.size_class]
        durations = [
            (at, min(steps.max_seconds, steps.base_seconds + steps.seconds_per_gib * size / GIB))
            for at, size in workflow.orders
        ]
        lanes = min(len(durations), self.model.controller.parallelism)
        workflow.lanes_left = lanes
        for i in range(lanes):
            lane = Lane(workflow, pool, cpu, memory, deque(durations[i::lanes]))
            self.pools[pool].enqueue(lane)
        self._place(pool)
        if not lanes:
            self._workflow_done(workflow)

    def _place(self, pool: str) -> None:
        now = self.clock.now
        pod_start = self.model.controller.pod_start_seconds
        for lane in self.pools[pool].place(now):
            lane.started_at = now
            total = sum(pod_start + seconds for _at, seconds in lane.orders)
            self._schedule(now + total, partial(self._lane_done, lane, lane.epoch))

    def _lane_done(self, lane: Lane, epoch: int) -> None:
        if lane.epoch != epoch:
            return  # preempted meanwhile; its orders run again elsewhere
        self._finish_orders(lane, until=self.clock.now)
        self.pools[lane.pool].release(lane, self.clock.now)
        workflow = lane.workflow
        workflow.lanes_left -= 1
        if workflow.lanes_left == 0:
            self._workflow_done(workflow)
        self._place(lane.pool)

    def _finish_orders(self, lane: Lane, *, until: float) -> None:
        """Record the orders the lane completed by ``until``; keep the rest on the lane."""
        clock = lane.started_at
        pod_start = self.model.controller.pod_start_seconds
        latencies = self.results.latencies
        while lane.orders:
            at, seconds = lane.orders[0]
            end = clock + pod_start + seconds
            if end > until + 1e-9:
                break
            lane.orders.popleft()
            latencies.append(end - at)
            clock = end
            self._last_done = max(self._last_done, end)
        lane.started_at = clock

    def _workflow_done(self, workflow: Workflow) -> None:
        self.cluster.finished(workflow)
        ttl = self.model.controller.ttl_seconds_after_success
        self._schedule(self.clock.now + ttl, self.cluster.deleted)

    def _preempt(self, node: Node) -> None:
        if node.gone:
            return
        state = self.pools[node.pool]
        self.results.preemptions += 1
        now = self.clock.now
        lanes = list(node.lanes)
        state.remove_node(node, now)
        touched = {node.pool}
        for lane in lanes:
            self._finish_orders(lane, until=now)
            lane.node = None
            lane.epoch += 1
            lane.attempts += 1
            self.results.retries += 1
            _cpu, _memory, _pool, fallback = self._shapes[lane.workflow.size_class]
            pool = fallback if lane.attempts >= self.model.retry_limit and fallback else lane.pool
            self.pools[pool].enqueue(lane)
            touched.add(pool)
        for pool in sorted(touched):
            self._place(pool)

    # -- the autoscaler --------------------------------------------------------------------
    def _wake_scanner(self) -> None:
        if not self._scanning:
            self._scanning = True
            self._schedule(self.clock.now, self._scan)

    def _scan(self) -> None:
        now = self.clock.now
        scaler = self.model.autoscaler
        self._sample(now)
        busy = (
            bool(self.cluster.live_total())
            or not self.engine.idle()
            or bool(self._next or self._reparked)
        )
        for state in self.pools.values():
            # Preemption is noticed at the scan after it happens (within scan_seconds).
            for node in [n for n in state.nodes if n.preempt_at <= now]:
                self._preempt(node)
            for _ in range(state.wanted()):
                node = state.add_node(now)
                self._schedule(
                    now + state.pool.scale_up_seconds,
                    partial(self._node_ready, state, node),
                )
            for node in state.unneeded(now, scaler.unneeded_seconds()):
                state.remove_node(node, now)
            busy = busy or len(state.nodes) > state.pool.min_nodes
        if busy:
            self._schedule(now + scaler.scan_seconds, self._scan)
        else:
            self._scanning = False

    def _node_ready(self, state: PoolState, node: Node) -> None:
        if node.gone:
            return
        now = self.clock.now
        node.ready, node.idle_since = True, now
        rate = state.pool.preemptions_per_node_hour
        if state.pool.spot and rate > 0:
            node.preempt_at = now + self._rng.expovariate(rate / 3600)
        self._place(state.pool.name)

    # -- results ---------------------------------------------------------------------------
    def _sample(self, now: float) -> None:
        upstream = self.swarm.arrived(now) - self._index + len(self._reparked)
        self.results.timeline.append(
            Sample(
                at=now,
                backlog=upstream + self._held,
                live=self.cluster.live_total(),
                objects=self.cluster.objects,
                nodes={name: len(s.nodes) for name, s in self.pools.items()},
            )
        )

    def _finish(self) -> Results:
        results = self.results
        end = self.clock.now
        for name, state in self.pools.items():
            for node in list(state.nodes):
                state.remove_node(node, end)
            results.node_seconds[name] = state.node_seconds
            results.cost[name] = state.node_seconds / 3600 * state.pool.price()
            results.peak_nodes[name] = state.peak_nodes
        results.orders = self._index
        results.makespan = self._last_done
        results.workflows = dict(self.cluster.created)
        results.peak_live = dict(self.cluster.peak_live)
        results.peak_live_total = self.cluster.peak_live_total
        results.peak_objects = self.cluster.peak_objects
        results.simulated_seconds = end
        return results


def simulate(swarm: Swarm, *, settings: Settings, model: ClusterModel, seed: int = 1) -> Results:
    return Simulation(swarm, settings=settings, model=model, seed=seed).run()
