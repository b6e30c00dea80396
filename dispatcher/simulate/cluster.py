"""Everything after a Workflow is created: Argo's controller, step pods on nodes, the autoscaler.

The controller starts at most ``workflows_per_second`` Workflows. A started Workflow runs
``parallelism`` of its orders at a time (order-pipeline's ``main``); each order runs the steps
of the ``order`` DAG that its flags turn on, one pod per step (:mod:`dispatcher.simulate.nodes`)
created ``step_gap_seconds`` after the step before it ended. The autoscaler scans every
``scan_seconds`` while it has something to decide (pods waiting in a pool that may grow, or an
empty node waiting out the profile's unneeded time) and sleeps otherwise, so a long run held
back by caps does not cost a scan per ten simulated seconds.

Spot preemption comes two ways, as a pool's model says: a share of step attempts on a spot pool
end part-way through their run (the test cluster's economics profile), and whole spot nodes are
reclaimed at a rate per node-hour (GKE's spot VMs), ending every pod on them. Either way the
step is retried after the template's backoff (growing by its factor), and its last retry
(``retry_limit``) runs on the on-demand fallback pool, where it is never preempted.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from dispatcher.core.settings import Settings
from dispatcher.simulate.events import Agenda
from dispatcher.simulate.model import ClusterModel, quantity
from dispatcher.simulate.nodes import Node, Pod, PoolState, Shape
from dispatcher.simulate.results import Results
from dispatcher.simulate.swarm import StepFlags
from dispatcher.simulate.workflows import SimulatedWorkflows, Workflow

GIB = 2**30
MIB = 2**20


@dataclass(frozen=True, slots=True)
class _Class:
    """What a size class's step pods ask for, where, and how long they run."""

    shape: Shape
    pool: PoolState
    fallback: PoolState | None
    base: float
    per_byte: float
    cap: float


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
        newest = model.pod_queue == "newest-first"
        self.pools = {p.name: PoolState(p, newest_first=newest) for p in model.pools}
        for state in self.pools.values():
            state.preempt_share = state.pool.preemptions_per_attempt if state.pool.spot else 0.0
        self._rng = random.Random(seed)  # noqa: S311 - reproducible simulation
        self._sample = sample
        self._classes: dict[str, _Class] = {}
        for c in settings.classes:
            model.pool(c.node_pool)  # every pool the classes name must be modelled
            if c.fallback_node_pool:
                model.pool(c.fallback_node_pool)
            steps = model.steps.get(c.name)
            if steps is None:
                raise KeyError(f"cluster model {model.name!r} has no steps for class {c.name!r}")
            shape = Shape(
                cpu=max(1, round(quantity(c.cpu) * 1000)),
                memory=max(1, math.ceil(quantity(c.memory) / MIB)),
            )
            self._classes[c.name] = _Class(
                shape=shape,
                pool=self.pools[c.node_pool],
                fallback=self.pools[c.fallback_node_pool] if c.fallback_node_pool else None,
                base=steps.base_seconds,
                per_byte=steps.seconds_per_gib / GIB,
                cap=steps.max_seconds,
            )
        self._defaults = dict(settings.optional_steps)
        self._pods_for_flags: dict[StepFlags, int] = {}
        controller = model.controller
        self._gap, self._pod_start = controller.step_gap_seconds, controller.pod_start_seconds
        self._parallelism = controller.parallelism
        rate = controller.pods_per_second
        self._pod_interval = 1 / rate if rate else 0.0
        self._pods_free = 0.0
        self._retry_limit = model.retry_limit
        self._clock = agenda.clock
        self._controller_free = 0.0
        self._scanning = False
        self._wakes: dict[str, float] = {}
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
        if not workflow.orders:
            self._workflow_done(workflow)
            return
        now = self.agenda.now
        for _ in range(min(len(workflow.orders), self._parallelism)):
            self._start_order(workflow, now)
        self._place(self._classes[workflow.size_class].pool)

    def _steps(self, flags: StepFlags) -> int:
        """Pods the order DAG runs for an order with these flags (its own, else the defaults)."""
        count = self._pods_for_flags.get(flags)
        if count is None:
            own = dict(flags)
            count = sum(
                1
                for step in self.model.pipeline
                if not step.optional or own.get(step.name, self._defaults.get(step.name, False))
            )
            self._pods_for_flags[flags] = count
        return count

    def _creation(self, due: float) -> float:
        """When a pod due at ``due`` is created: the controller creates ``pods_per_second`` at
        most (its API client's rate limit), in the order they fall due."""
        if self._pod_interval:
            due = max(due, self._pods_free)
            self._pods_free = due + self._pod_interval
        return due

    def _start_order(self, workflow: Workflow, now: float) -> None:
        at, size, flags = workflow.orders[workflow.started]
        workflow.started += 1
        workflow.unfinished += 1
        spec = self._classes[workflow.size_class]
        seconds = min(spec.cap, spec.base + spec.per_byte * size)
        shape = spec.shape
        steps = self._steps(flags)
        pod = Pod(workflow, at, seconds, steps, shape.cpu, shape.memory, shape, spec.pool)
        pod.done = partial(self._pod_done, pod)
        pod.ready_at = self._creation(now + self._gap)
        spec.pool.enqueue(pod)

    def _place(self, state: PoolState) -> None:
        agenda = self.agenda
        now = agenda.now
        for pod in state.place(now):
            self._run(pod, now, state)
        pending = state.pending
        if pending:
            when = pending[0].ready_at
            if when > now and state.open and self._wakes.get(state.pool.name) != when:
                self._wakes[state.pool.name] = when  # room, and the head is not created yet
                agenda.at(when, partial(self._place, state))
            if not self._scanning and len(state.nodes) < state.pool.max_nodes:
                self._wake()

    def _run(self, pod: Pod, now: float, state: PoolState) -> None:
        """A bound pod runs: when it ends, and whether preempted (a draw per spot attempt)."""
        share = state.preempt_share
        if share and pod.attempt < self._retry_limit and self._rng.random() < share:
            pod.failing = True
            pod.due = now + self._pod_start + self._rng.random() * pod.seconds
        else:
            pod.due = now + self._pod_start + pod.seconds
        self.agenda.at(pod.due, pod.done)  # type: ignore[arg-type]

    def _pod_done(self, pod: Pod) -> None:
        # The hottest function of a long run (once per step attempt): kept flat on purpose.
        now = self._clock.now
        if now != pod.due or pod.node is None:
            return  # its node was reclaimed meanwhile; it runs again elsewhere
        state: PoolState = pod.state  # type: ignore[assignment]
        next_step = not pod.failing and pod.steps_left > 1
        if next_step:
            pod.steps_left -= 1
            pod.attempt = 0
            due = now + self._gap
            pod.ready_at = self._creation(due) if self._pod_interval else due
            if pod.home is state:
                head = state.hand_over(pod, now)
                if head is not None:
                    self._run(head, now, state)
                    return
        node = state.release(pod, now)
        if pod.failing:
            pod.failing = False
            self._preempted(pod)
        elif next_step:  # it queues on its class's pool
            home = pod.home
            home.enqueue(pod)
            if home is not state:
                self._place(home)
        else:
            self._order_done(pod, now)
        if node is not None and not node.pods and len(state.nodes) > state.pool.min_nodes:
            self._wake()  # an empty node: the scale-down timer runs
        self._place(state)

    def _order_done(self, pod: Pod, now: float) -> None:
        self.results.latencies.append(now - pod.arrival)
        self.last_done = now
        workflow = pod.workflow
        workflow.unfinished -= 1
        if workflow.started < len(workflow.orders):
            self._start_order(workflow, now)
            if pod.home is not pod.state:
                self._place(pod.home)
        elif not workflow.unfinished:
            self._workflow_done(workflow)

    def _workflow_done(self, workflow: Workflow) -> None:
        now = self.agenda.now
        self.agenda.notice()  # one live Workflow fewer: admission may open
        self.results.workflow_latencies.extend(now - at for at, _size, _flags in workflow.orders)
        self.workflows.finished(workflow)
        ttl = self.model.controller.ttl_seconds_after_success
        self.agenda.after(ttl, self._deleted, background=True)
        self._sample()

    def _deleted(self) -> None:
        self.agenda.notice()  # one Workflow object fewer: admission may open
        self.workflows.deleted()

    # -- spot ------------------------------------------------------------------------------
    def _preempted(self, pod: Pod) -> None:
        """An attempt lost to a reclaimed spot VM: retry after the backoff, the last retry on
        the fallback pool."""
        self.results.preemptions += 1
        if not pod.retried:
            pod.retried = True
            self.results.retries += 1
        pod.attempt += 1
        fallback = self._classes[pod.workflow.size_class].fallback
        last = pod.attempt >= self.model.retry_limit and fallback is not None
        state = fallback if last and fallback is not None else pod.home
        model = self.model
        delay = model.retry_backoff_seconds * model.retry_backoff_factor ** (pod.attempt - 1)
        self.agenda.after(delay, partial(self._retry, pod, state))

    def _retry(self, pod: Pod, state: PoolState) -> None:
        pod.ready_at = self._creation(self.agenda.now)
        state.enqueue(pod)
        self._place(state)

    def _reclaim(self, node: Node) -> None:
        """A spot node reclaimed: every pod on it loses its attempt."""
        if node.gone:
            return
        pods = list(node.pods)
        self.pools[node.pool].remove_node(node, self.agenda.now)
        for pod in pods:
            pod.node = None
            pod.due = -1.0
            pod.failing = False
            self._preempted(pod)
        self._wake()

    # -- the autoscaler --------------------------------------------------------------------
    def _wake(self) -> None:
        if not self._scanning:
            self._scanning = True
            self.agenda.after(0.0, self._scan)

    def _scan(self) -> None:
        now = self.agenda.now
        scaler = self.model.autoscaler
        unneeded, most = scaler.unneeded_seconds(), scaler.scale_down_nodes_per_scan
        self._sample()
        again = False
        for state in self.pools.values():
            for _ in range(state.wanted()):
                node = state.add_node(now)
                self.agenda.after(
                    state.pool.scale_up_seconds, partial(self._node_ready, state, node)
                )
            for node in state.unneeded(now, unneeded, most=most):
                state.remove_node(node, now)
            again = again or state.has_decisions()
        if again:
            self.agenda.after(scaler.scan_seconds, self._scan)
        else:
            self._scanning = False

    def _node_ready(self, state: PoolState, node: Node) -> None:
        if node.gone:
            return
        state.node_ready(node, self.agenda.now)
        rate = state.pool.preemptions_per_node_hour
        if state.pool.spot and rate > 0:
            life = self._rng.expovariate(rate / 3600)
            self.agenda.after(life, partial(self._reclaim, node), background=True)
        self._place(state)
        self._wake()

    def finish(self) -> None:
        """End of the run: every node still there is billed until now."""
        now = self.agenda.now
        for state in self.pools.values():
            for node in list(state.nodes):
                state.remove_node(node, now)
