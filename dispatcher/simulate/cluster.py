"""Everything after a Workflow is created: Argo's controller, pods on nodes, the autoscaler.

The controller starts at most ``workflows_per_second`` Workflows; each runs as lanes
(:mod:`dispatcher.simulate.nodes`) on its class's pool. The autoscaler scans every
``scan_seconds`` while it has something to decide (lanes waiting in a pool that may grow, or
an empty node waiting out the profile's unneeded time) and sleeps otherwise, so a long run
held back by caps does not cost a scan per ten simulated seconds. A spot node's preemption is
a background event drawn when it becomes Ready; the lanes on it start their current order
again, on the fallback pool after ``retry_limit`` retries.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from functools import partial

from dispatcher.core.settings import Settings
from dispatcher.simulate.events import Agenda
from dispatcher.simulate.model import ClusterModel, quantity
from dispatcher.simulate.nodes import Lane, Node, PoolState
from dispatcher.simulate.results import Results
from dispatcher.simulate.workflows import SimulatedWorkflows, Workflow

GIB = 2**30


class SimulatedCluster:
    def __init__(
        self,
        *,
        settings: Settings,
        model: ClusterModel,
        agenda: Agenda,
        workflows: SimulatedWorkflows,
        results: Results,
        seed: int,
        sample: Callable[[], None],
    ) -> None:
        self.model, self.agenda, self.workflows, self.results = model, agenda, workflows, results
        self.pools = {p.name: PoolState(p) for p in model.pools}
        self._rng = random.Random(seed)  # noqa: S311 - reproducible simulation
        self._sample = sample
        self._shapes: dict[str, tuple[float, float, str, str | None]] = {}
        for c in settings.classes:
            model.pool(c.node_pool)  # every pool the classes name must be modelled
            if c.fallback_node_pool:
                model.pool(c.fallback_node_pool)
            if c.name not in model.steps:
                raise KeyError(f"cluster model {model.name!r} has no steps for class {c.name!r}")
            shape = (quantity(c.cpu), quantity(c.memory) / GIB, c.node_pool, c.fallback_node_pool)
            self._shapes[c.name] = shape
        self._controller_free = 0.0
        self._scanning = False
        self.last_done = 0.0
        for state in self.pools.values():
            for _ in range(state.pool.min_nodes):
                self._node_ready(state, state.add_node(0.0))

    # -- Argo ------------------------------------------------------------------------------
    def created(self, workflow: Workflow) -> None:
        """The API has stored it: the controller starts it when its throughput allows."""
        start = max(self.agenda.now, self._controller_free)
        self._controller_free = start + 1 / self.model.controller.workflows_per_second
        self.agenda.at(start, partial(self._start, workflow))

    def _start(self, workflow: Workflow) -> None:
        steps = self.model.steps[workflow.size_class]
        cpu, memory, pool, _fallback = self._shapes[workflow.size_class]
        base, per_gib, cap = steps.base_seconds, steps.seconds_per_gib / GIB, steps.max_seconds
        durations = [(at, min(cap, base + per_gib * size)) for at, size in workflow.orders]
        lanes = min(len(durations), self.model.controller.parallelism)
        workflow.lanes_left = lanes
        state = self.pools[pool]
        for i in range(lanes):
            state.enqueue(Lane(workflow, pool, cpu, memory, deque(durations[i::lanes])))
        if not lanes:
            self._workflow_done(workflow)
        self._place(state)

    def _place(self, state: PoolState) -> None:
        now = self.agenda.now
        pod_start = self.model.controller.pod_start_seconds
        for lane in state.place(now):
            lane.started_at = now
            total = sum(pod_start + seconds for _at, seconds in lane.orders)
            self.agenda.at(now + total, partial(self._lane_done, lane, lane.epoch))
        if state.pending and state.can_grow():
            self._wake()

    def _lane_done(self, lane: Lane, epoch: int) -> None:
        if lane.epoch != epoch:
            return  # preempted meanwhile; its orders run again elsewhere
        now = self.agenda.now
        self._finish_orders(lane, until=now)
        state = self.pools[lane.pool]
        node = lane.node
        state.release(lane, now)
        workflow = lane.workflow
        workflow.lanes_left -= 1
        if workflow.lanes_left == 0:
            self._workflow_done(workflow)
        if node is not None and not node.lanes and len(state.nodes) > state.pool.min_nodes:
            self._wake()  # an empty node: the scale-down timer runs
        self._place(state)

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
            self.last_done = max(self.last_done, end)
        lane.started_at = clock

    def _workflow_done(self, workflow: Workflow) -> None:
        now = self.agenda.now
        self.results.workflow_latencies.extend(now - at for at, _size in workflow.orders)
        self.workflows.finished(workflow)
        ttl = self.model.controller.ttl_seconds_after_success
        self.agenda.after(ttl, self.workflows.deleted, background=True)
        self._sample()

    # -- spot ------------------------------------------------------------------------------
    def _preempt(self, node: Node) -> None:
        if node.gone:
            return
        now = self.agenda.now
        self.results.preemptions += 1
        lanes = list(node.lanes)
        self.pools[node.pool].remove_node(node, now)
        touched = {node.pool}
        for lane in lanes:
            self._finish_orders(lane, until=now)
            lane.node = None
            lane.epoch += 1
            lane.attempts += 1
            self.results.retries += 1
            fallback = self._shapes[lane.workflow.size_class][3]
            pool = fallback if lane.attempts >= self.model.retry_limit and fallback else lane.pool
            self.pools[pool].enqueue(lane)
            touched.add(pool)
        for name in sorted(touched):
            self._place(self.pools[name])
        self._wake()

    # -- the autoscaler --------------------------------------------------------------------
    def _wake(self) -> None:
        if not self._scanning:
            self._scanning = True
            self.agenda.after(0.0, self._scan)

    def _scan(self) -> None:
        now = self.agenda.now
        unneeded = self.model.autoscaler.unneeded_seconds()
        self._sample()
        again = False
        for state in self.pools.values():
            for _ in range(state.wanted()):
                node = state.add_node(now)
                self.agenda.after(
                    state.pool.scale_up_seconds, partial(self._node_ready, state, node)
                )
            for node in state.unneeded(now, unneeded):
                state.remove_node(node, now)
            again = again or state.has_decisions()
        if again:
            self.agenda.after(self.model.autoscaler.scan_seconds, self._scan)
        else:
            self._scanning = False

    def _node_ready(self, state: PoolState, node: Node) -> None:
        if node.gone:
            return
        now = self.agenda.now
        node.ready, node.idle_since = True, now
        rate = state.pool.preemptions_per_node_hour
        if state.pool.spot and rate > 0:
            life = self._rng.expovariate(rate / 3600)
            self.agenda.after(life, partial(self._preempt, node), background=True)
        self._place(state)
        self._wake()

    def finish(self) -> None:
        """End of the run: every node still there is billed until now."""
        now = self.agenda.now
        for state in self.pools.values():
            for node in list(state.nodes):
                state.remove_node(node, now)
