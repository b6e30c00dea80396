"""A record of the nodes of each GKE pool over time, for an autoscaling cluster.

Why: with the autoscaler on, nodes come and go during a swarm; what a swarm cost and whether its
pods landed on their class's pool can only be judged from which nodes existed when, and nodes
(like the pods, which Argo garbage-collects on success) are gone by the end. NodeLog polls the
Node list in a thread and keeps, per node: its pool (label `cloud.google.com/gke-nodepool`), its
creationTimestamp and when it was first seen deleting or gone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from kubernetes import client as k8s

from dispatcher.local.nodes import POOL_LABEL


@dataclass
class NodeSpan:
    """One node's life: created (creationTimestamp, epoch s) to gone (epoch s, None: alive)."""

    name: str
    pool: str
    created: float
    gone: float | None = None

    def seconds(self, now: float) -> float:
        return (self.gone if self.gone is not None else now) - self.created


class NodeLog:
    """Polls the Nodes that carry a pool label every `interval` seconds while entered."""

    def __init__(self, api: k8s.ApiClient, *, interval: float = 0.5) -> None:
        self._core = k8s.CoreV1Api(api)
        self._interval = interval
        self._lock = threading.Lock()
        self._spans: dict[str, NodeSpan] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="node-log")
        self.errors = 0

    def __enter__(self) -> NodeLog:
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a failed poll is retried at the next tick
                self.errors += 1

    def poll(self) -> None:
        """One look at the Node list (also usable without the thread)."""
        listed = self._core.list_node(label_selector=POOL_LABEL).items
        now = time.time()
        with self._lock:
            alive = set()
            for node in listed:
                meta = node.metadata
                span = self._spans.get(meta.name)
                if span is None or (span.gone is not None and meta.deletion_timestamp is None):
                    created = meta.creation_timestamp
                    span = NodeSpan(
                        name=meta.name,
                        pool=meta.labels[POOL_LABEL],
                        created=created.timestamp() if isinstance(created, datetime) else now,
                    )
                    self._spans[meta.name] = span
                if meta.deletion_timestamp is not None and span.gone is None:
                    span.gone = now
                if meta.deletion_timestamp is None:
                    alive.add(meta.name)
            for span in self._spans.values():
                if span.gone is None and span.name not in alive:
                    span.gone = now

    def spans(self) -> list[NodeSpan]:
        with self._lock:
            return [NodeSpan(s.name, s.pool, s.created, s.gone) for s in self._spans.values()]

    def pool_of(self, node: str) -> str | None:
        with self._lock:
            span = self._spans.get(node)
            return None if span is None else span.pool

    def live(self) -> dict[str, int]:
        """Nodes per pool not (yet) deleting, as of the last poll."""
        counts: dict[str, int] = {}
        for span in self.spans():
            if span.gone is None:
                counts[span.pool] = counts.get(span.pool, 0) + 1
        return counts

    def peak(self) -> dict[str, int]:
        """The most nodes each pool had at one moment (from the nodes' lifetimes)."""
        events: list[tuple[float, int, str]] = []
        for span in self.spans():
            events.append((span.created, 1, span.pool))
            if span.gone is not None:
                events.append((span.gone, -1, span.pool))
        now: dict[str, int] = {}
        most: dict[str, int] = {}
        for _, step, pool in sorted(events, key=lambda e: (e[0], e[1])):  # gone before created
            now[pool] = now.get(pool, 0) + step
            most[pool] = max(most.get(pool, 0), now[pool])
        return most

    def node_seconds(self, now: float | None = None) -> dict[str, float]:
        """Node-seconds per pool up to `now` (default: this moment)."""
        at = time.time() if now is None else now
        totals: dict[str, float] = {}
        for span in self.spans():
            totals[span.pool] = totals.get(span.pool, 0.0) + span.seconds(at)
        return totals


def wait_for_zero(log: NodeLog, *, timeout: float) -> float:
    """Poll until no pool has a live node; the seconds it took (TimeoutError at the deadline)."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            log.poll()
        if not log.live():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"pools not back to zero within {timeout:.0f}s: {log.live()}")
        time.sleep(0.5)
