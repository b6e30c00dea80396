"""Node pools under a cluster autoscaler, and the step pods of running Workflows placed on them.

Why this grain: on the cluster every step of an order is its own pod, created when the step
before it ends and queued for room on its pool like every other pending pod. The steps of all
live Workflows therefore interleave pod by pod, and a Workflow ends only when its slowest order
has been through that queue five or six times; a model that held one pod slot per order chain
ends the first Workflows far too early. So a :class:`Pod` here is one order of a running
Workflow, standing for the pod of the step it is on: it waits in its pool's queue from the
moment the controller creates it, holds its class's CPU and memory on a node while the step
runs, and goes back to the end of the queue for its next step.

Which waiting pod gets room that frees is the model's ``pod_queue``: the oldest (a strict FIFO)
or the newest. kube-scheduler sits between the two: a new pod is tried at once, while one that
did not fit waits out a backoff of 1 s doubling to 10 s before it is tried again, so with
short steps the pods just created win most freed room.

CPU is kept in millicores and memory in MiB, as integers: a node's free room goes up and down
millions of times in a long run, and float sums would drift until an exact fit no longer fits.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.simulate.model import Pool
from dispatcher.simulate.workflows import Workflow


@dataclass(eq=False, slots=True)
class Node:
    pool: str
    created_at: float
    cpu_free: int
    memory_free: int
    ready: bool = False
    gone: bool = False
    #: insertion-ordered (a dict, not a set: a run must not depend on object addresses)
    pods: dict[Pod, None] = field(default_factory=dict)
    idle_since: float = 0.0


@dataclass(eq=False, slots=True)
class Shape:
    """What one step pod of a size class asks for (identity-hashed: a cheap dict key)."""

    cpu: int  # millicores
    memory: int  # MiB


@dataclass(eq=False, slots=True)
class Pod:
    """One order of a running Workflow, as the pod of the step it is on."""

    workflow: Workflow
    arrival: float
    seconds: float  # one attempt of one step runs this long (every step of the order alike)
    steps_left: int  # the current step included
    cpu: int  # millicores
    memory: int  # MiB
    shape: Shape
    home: PoolState  # its class's pool: every first attempt runs there
    state: PoolState | None = None  # the pool it waits in or runs on now
    share: float = 0.0  # of a node of its pool that it fills (1 / pods per node)
    ready_at: float = 0.0  # the controller has created it: it may be bound from then on
    attempt: int = 0  # of the current step: 0 is the first, retry_limit the last
    retried: bool = False  # some step of this order ran again
    node: Node | None = None
    #: when the running attempt ends (an event due at another time is stale: its node was
    #: reclaimed), whether it ends preempted, and the event's action, built once per order
    due: float = -1.0
    failing: bool = False
    done: Callable[[], None] | None = None


class PoolState:
    """The nodes of one pool, the pods waiting for room, and what the nodes cost so far."""

    def __init__(self, pool: Pool, *, newest_first: bool = False) -> None:
        self.pool = pool
        self.newest_first = newest_first
        self.preempt_share = 0.0  # of the attempts bound here (spot pools only)
        self.cpu = round(pool.cpu * 1000)
        self.memory = math.floor(pool.memory_gib * 1024)
        self.nodes: list[Node] = []
        self.pending: deque[Pod] = deque()
        self.node_seconds = 0.0
        self.peak_nodes = 0
        #: ready nodes with room for the smallest pod this pool has seen: where to look first
        self.open: dict[Node, None] = {}
        self._min_cpu = self.cpu + 1
        self._min_memory = self.memory + 1
        self._need = 0.0  # nodes the waiting pods fill, kept as pods come and go
        self._shares: dict[Shape, float] = {}

    def enqueue(self, pod: Pod) -> None:
        pod.state = self
        self.pending.append(pod)
        share = self._shares.get(pod.shape) or self._new_shape(pod)
        pod.share = share
        self._need += share

    def _new_shape(self, pod: Pod) -> float:
        slots = min(self.cpu // pod.cpu, self.memory // pod.memory)
        if slots < 1:
            raise ValueError(
                f"a pod of {pod.cpu}m CPU / {pod.memory} MiB never fits a node of pool "
                f"{self.pool.name} ({self.pool.cpu} CPU / {self.pool.memory_gib} GiB)"
            )
        self._shares[pod.shape] = 1 / slots
        if pod.cpu < self._min_cpu or pod.memory < self._min_memory:
            self._min_cpu = min(self._min_cpu, pod.cpu)
            self._min_memory = min(self._min_memory, pod.memory)
            self.open = {n: None for n in self.nodes if n.ready and self._fits_smallest(n)}
        return 1 / slots

    def _fits_smallest(self, node: Node) -> bool:
        return node.cpu_free >= self._min_cpu and node.memory_free >= self._min_memory

    def add_node(self, now: float) -> Node:
        node = Node(self.pool.name, now, self.cpu, self.memory)
        self.nodes.append(node)
        self.peak_nodes = max(self.peak_nodes, len(self.nodes))
        return node

    def node_ready(self, node: Node, now: float) -> None:
        node.ready, node.idle_since = True, now
        if self._fits_smallest(node):
            self.open[node] = None

    def remove_node(self, node: Node, now: float) -> None:
        node.gone = True
        self.nodes.remove(node)
        self.open.pop(node, None)
        self.node_seconds += now - node.created_at

    def place(self, now: float) -> list[Pod]:
        """Bind waiting pods that are created by ``now`` to ready nodes with room; return
        those bound. First come, first served (or newest first): the pod whose turn it is
        waits if nothing fits it."""
        bound: list[Pod] = []
        pending, open_nodes = self.pending, self.open
        while pending and open_nodes:
            i = self._next(now)
            if i < 0:
                break
            pod = pending[i]
            cpu, memory = pod.cpu, pod.memory
            for node in open_nodes:
                if node.cpu_free >= cpu and node.memory_free >= memory:
                    break
            else:
                break
            del pending[i]
            self._need -= pod.share
            node.cpu_free -= cpu
            node.memory_free -= memory
            node.pods[pod] = None
            pod.node = node
            bound.append(pod)
            if node.cpu_free < self._min_cpu or node.memory_free < self._min_memory:
                del open_nodes[node]
        return bound

    def _next(self, now: float) -> int:
        """Where in the queue the pod to bind next is (-1: none is created yet): its head,
        or with ``newest_first`` the pod created last."""
        pending = self.pending
        if not self.newest_first:
            return 0 if pending[0].ready_at <= now else -1
        i = len(pending) - 1
        while i >= 0 and pending[i].ready_at > now:
            i -= 1
        return i

    def hand_over(self, pod: Pod, now: float) -> Pod | None:
        """A saturated pool's fast path, most events of a long run: ``pod`` ends a step and
        queues for its next one here, and the pod whose turn it is (created, the same shape)
        takes its room on its node. Only when no other node has room, where first fit would
        have bound the head already. Returns the head, or None when the path does not apply."""
        pending = self.pending
        if self.open or not pending:
            return None
        if self.newest_first:
            i = self._next(now)
            if i < 0:
                return None
        elif pending[0].ready_at <= now:
            i = 0
        else:
            return None
        head = pending[i]
        node = pod.node
        if head.shape is not pod.shape or node is None:
            return None
        del pending[i]
        pods = node.pods
        del pods[pod]
        pods[head] = None
        head.node, pod.node = node, None
        pending.append(pod)  # its share of a node is the head's: the need is unchanged
        return head

    def release(self, pod: Pod, now: float) -> Node | None:
        node = pod.node
        pod.node = None
        if node is None or node.gone:
            return None
        pods = node.pods
        del pods[pod]
        node.cpu_free += pod.cpu
        node.memory_free += pod.memory
        if node.cpu_free >= self._min_cpu and node.memory_free >= self._min_memory:
            self.open[node] = None
        if not pods:
            node.idle_since = now
        return node

    def wanted(self) -> int:
        """Nodes to add so every waiting pod fits (beyond room already there or starting)."""
        if not self.pending:
            self._need = 0.0  # no drift from float sums once the queue is empty
            return 0
        room = 0.0
        starting = 0
        for node in self.nodes:
            if not node.ready:
                starting += 1
            elif node in self.open:
                room += min(node.cpu_free / self.cpu, node.memory_free / self.memory)
        spare = self.pool.max_nodes - len(self.nodes)
        return max(0, min(spare, math.ceil(self._need - room - 1e-9) - starting))

    def can_grow(self) -> bool:
        return len(self.nodes) < self.pool.max_nodes

    def has_decisions(self) -> bool:
        """The autoscaler has something to decide here: waiting pods and room to grow, or an
        empty node above ``min_nodes`` whose unneeded time is running."""
        if self.pending and self.can_grow():
            return True
        if len(self.nodes) <= self.pool.min_nodes:
            return False
        return any(node.ready and not node.pods for node in self.nodes)

    def unneeded(self, now: float, after: float, *, most: int | None) -> list[Node]:
        """Ready nodes empty for ``after`` seconds, keeping ``min_nodes``, at most ``most``."""
        spare = len(self.nodes) - self.pool.min_nodes
        if most is not None:
            spare = min(spare, most)
        found = []
        for node in self.nodes:
            if spare <= 0:
                break
            if node.ready and not node.pods and now - node.idle_since >= after:
                found.append(node)
                spare -= 1
        return found
