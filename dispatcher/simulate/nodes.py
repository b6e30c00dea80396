"""Node pools under a cluster autoscaler, and the pods of running Workflows placed on them.

Why this grain: a Workflow of ``n`` orders runs at most ``parallelism`` of them at a time
(order-pipeline's ``main``), so it is modelled as ``min(n, parallelism)`` *lanes*, each a pod
slot of the class's CPU and memory that runs its share of the orders one after another. A
lane, not a pod per step, is what keeps a million orders cheap to simulate while nodes,
packing, scale-up delay, scale-down after the profile's unneeded time, and spot preemption
(a lane's current order starts again, on the on-demand fallback pool after ``retry_limit``
retries) still behave as on the cluster.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from dispatcher.simulate.model import Pool
from dispatcher.simulate.workflows import Workflow


@dataclass(eq=False, slots=True)
class Node:
    pool: str
    created_at: float
    cpu_free: float
    memory_free: float
    ready: bool = False
    gone: bool = False
    #: insertion-ordered (a dict, not a set: a run must not depend on object addresses)
    lanes: dict[Lane, None] = field(default_factory=dict)
    idle_since: float = 0.0


@dataclass(eq=False, slots=True)
class Lane:
    """One pod slot of a running Workflow and the orders it still has to run."""

    workflow: Workflow
    pool: str
    cpu: float
    memory: float
    #: (arrival time, seconds) of each order still to run, first one next.
    orders: deque[tuple[float, float]]
    attempts: int = 0
    node: Node | None = None
    started_at: float = 0.0
    epoch: int = 0  # bumped when preempted: a stale "done" event is ignored


class PoolState:
    """The nodes of one pool, the lanes waiting for room, and what the nodes cost so far."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.nodes: list[Node] = []
        self.pending: deque[Lane] = deque()
        self.node_seconds = 0.0
        self.peak_nodes = 0
        self._need = 0.0  # nodes the waiting lanes fill, kept as lanes come and go
        self._slots: dict[tuple[float, float], int] = {}

    def enqueue(self, lane: Lane) -> None:
        lane.pool = self.pool.name
        self.pending.append(lane)
        self._need += 1 / self._slots_for(lane)

    def _slots_for(self, lane: Lane) -> int:
        shape = (lane.cpu, lane.memory)
        slots = self._slots.get(shape)
        if slots is None:
            slots = int(min(self.pool.cpu / lane.cpu, self.pool.memory_gib / lane.memory))
            if slots < 1:
                raise ValueError(
                    f"a pod of {lane.cpu} CPU / {lane.memory:.1f} GiB never fits a node of "
                    f"pool {self.pool.name} ({self.pool.cpu} CPU / {self.pool.memory_gib} GiB)"
                )
            self._slots[shape] = slots
        return slots

    def live_nodes(self) -> int:
        return len(self.nodes)

    def add_node(self, now: float) -> Node:
        node = Node(self.pool.name, now, self.pool.cpu, self.pool.memory_gib)
        self.nodes.append(node)
        self.peak_nodes = max(self.peak_nodes, len(self.nodes))
        return node

    def remove_node(self, node: Node, now: float) -> None:
        node.gone = True
        self.nodes.remove(node)
        self.node_seconds += now - node.created_at

    def place(self, now: float) -> list[Lane]:
        """Bind waiting lanes to ready nodes with room (first fit); return those bound."""
        bound: list[Lane] = []
        pending = self.pending
        if not pending:
            return bound
        candidates = [n for n in self.nodes if n.ready]
        while pending and candidates:
            lane = pending[0]
            node = next(
                (n for n in candidates if n.cpu_free >= lane.cpu and n.memory_free >= lane.memory),
                None,
            )
            if node is None:
                break  # FIFO, as the scheduler's queue: the head waits for room
            pending.popleft()
            self._need -= 1 / self._slots[(lane.cpu, lane.memory)]
            node.cpu_free -= lane.cpu
            node.memory_free -= lane.memory
            node.lanes[lane] = None
            lane.node = node
            bound.append(lane)
            if node.cpu_free < lane.cpu or node.memory_free < lane.memory:
                candidates.remove(node)
        return bound

    def release(self, lane: Lane, now: float) -> None:
        node = lane.node
        lane.node = None
        if node is None or node.gone:
            return
        node.lanes.pop(lane, None)
        node.cpu_free += lane.cpu
        node.memory_free += lane.memory
        if not node.lanes:
            node.idle_since = now

    def wanted(self) -> int:
        """Nodes to add so every waiting lane fits (beyond nodes already starting)."""
        if not self.pending:
            self._need = 0.0  # no drift from float sums once the queue is empty
            return 0
        need = self._need
        starting = sum(1 for n in self.nodes if not n.ready)
        free_ready = sum(1 for n in self.nodes if n.ready and not n.lanes)
        room = self.pool.max_nodes - len(self.nodes)
        return max(0, min(room, math.ceil(need - 1e-9) - starting - free_ready))

    def can_grow(self) -> bool:
        return len(self.nodes) < self.pool.max_nodes

    def has_decisions(self) -> bool:
        """The autoscaler has something to decide here: waiting lanes and room to grow, or an
        empty node above ``min_nodes`` whose unneeded time is running."""
        if self.pending and self.can_grow():
            return True
        if len(self.nodes) <= self.pool.min_nodes:
            return False
        return any(node.ready and not node.lanes for node in self.nodes)

    def unneeded(self, now: float, after: float) -> list[Node]:
        """Ready nodes empty for ``after`` seconds, keeping ``min_nodes``."""
        spare = len(self.nodes) - self.pool.min_nodes
        found = []
        for node in self.nodes:
            if spare <= 0:
                break
            if node.ready and not node.lanes and now - node.idle_since >= after:
                found.append(node)
                spare -= 1
        return found
