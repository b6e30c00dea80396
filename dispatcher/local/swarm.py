"""An example swarm through the local stack: publish it, then watch what becomes of it.

Why: the point of `dispatcher local up` is to see the main job happen. The swarm is
`dispatcher example-orders` under a seed of its own, so its order ids are new (the dedupe ledger
would swallow a repeat) and this swarm's Workflows can be told from earlier ones. What is seen
comes from where an operator would look: the Workflows in the API server (by the dispatcher's
labels and order-id annotation), the nodes and pods per pool, and the dispatcher's /metrics.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.adapters.pubsub_clients import publisher_client
from dispatcher.core.render import LABEL_CLASS, selector
from dispatcher.local import topics
from dispatcher.local.stack import StackInfo
from dispatcher.operator.examples import example_orders

ORDER_IDS = "burst-dispatcher.io/order-ids"
POOL_LABEL = "cloud.google.com/gke-nodepool"
LIVE, SUCCEEDED, FAILED = "live", "succeeded", "failed"
ENDED = {"Succeeded": SUCCEEDED, "Failed": FAILED, "Error": FAILED}


@dataclass(frozen=True)
class Swarm:
    """What was published: the valid order ids to find in Workflows, the rest to dead-letter."""

    seed: int
    published: int
    valid: frozenset[str]
    started: float

    @property
    def invalid(self) -> int:
        return self.published - len(self.valid)


def publish_lines(stack: StackInfo, lines: list[str]) -> None:
    """Publish each line as one message to the stack's orders topic; waits for every ack."""
    with topics.emulator(stack.emulator_host):
        publisher = publisher_client()
        try:
            futures = [publisher.publish(stack.orders_topic, line.encode()) for line in lines]
            for future in futures:
                future.result(timeout=60)
        finally:
            publisher.stop()


def publish(stack: StackInfo, *, count: int, seed: int, invalid_share: float) -> Swarm:
    """Publish `dispatcher example-orders COUNT --seed SEED` to the orders topic."""
    lines = list(example_orders(count, seed=seed, invalid_share=invalid_share))
    prefix = f"ord-{seed}-"
    valid = set()
    for line in lines:
        try:
            order = json.loads(line)
        except ValueError:
            continue
        if isinstance(order, dict) and str(order.get("order_id", "")).startswith(prefix):
            valid.add(str(order["order_id"]))
    started = time.monotonic()
    publish_lines(stack, lines)
    return Swarm(seed, len(lines), frozenset(valid), started)


@dataclass
class ClassRow:
    """One size class of this swarm: its orders in Workflows, and the Workflows by state."""

    orders: int = 0
    workflows: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Snapshot:
    elapsed: float
    published: int
    dead_lettered: int
    held: int
    classes: dict[str, ClassRow]
    pools: dict[str, tuple[int, int]]  # pool -> (nodes, pods not finished)
    done: bool

    @property
    def failed(self) -> int:
        return sum(row.workflows[FAILED] for row in self.classes.values())


class Observer:
    """Samples the cluster and the dispatcher's metrics for one swarm."""

    def __init__(self, stack: StackInfo, api: k8s.ApiClient) -> None:
        """Made before the swarm is published: bad orders are dead-lettered within a second."""
        self._stack = stack
        self._custom, self._core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
        self._baseline = self._metrics()[0]

    def _metrics(self) -> tuple[int, int]:
        """(dead-lettered since start, held now) from the dispatcher's /metrics."""
        url = f"http://127.0.0.1:{self._stack.ops_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        dead = held = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "burst_dispatcher_orders_dead_lettered_total":
                    dead += sample.value
                elif sample.name == "burst_dispatcher_held_orders":
                    held += sample.value
        return int(dead), int(held)

    def sample(self, swarm: Swarm) -> Snapshot:
        stack = self._stack
        listing = self._custom.list_namespaced_custom_object(
            "argoproj.io", "v1alpha1", stack.namespace, "workflows",
            label_selector=selector(stack.environment),
        )  # fmt: skip
        classes: dict[str, ClassRow] = {}
        seen: set[str] = set()
        for body in listing["items"]:
            meta = body["metadata"]
            ids = set(json.loads((meta.get("annotations") or {}).get(ORDER_IDS, "[]")))
            mine = ids & swarm.valid
            if not mine:
                continue
            seen |= mine
            row = classes.setdefault(meta["labels"].get(LABEL_CLASS, "?"), ClassRow())
            row.orders += len(mine)
            phase = (body.get("status") or {}).get("phase") or "Pending"
            row.workflows[ENDED.get(phase, LIVE)] += 1
        dead, held = self._metrics()
        dead -= self._baseline
        live = sum(row.workflows[LIVE] for row in classes.values())
        done = seen >= swarm.valid and live == 0 and dead >= swarm.invalid
        return Snapshot(
            elapsed=time.monotonic() - swarm.started, published=swarm.published,
            dead_lettered=dead, held=held, classes=classes, pools=self._pools(), done=done,
        )  # fmt: skip

    def _pools(self) -> dict[str, tuple[int, int]]:
        pool_of = {
            n.metadata.name: (n.metadata.labels or {}).get(POOL_LABEL, "")
            for n in self._core.list_node().items
        }
        nodes = Counter(p for p in pool_of.values() if p)
        pods = Counter(
            pool_of.get(p.spec.node_name or "", "")
            for p in self._core.list_namespaced_pod(self._stack.namespace).items
            if p.status.phase in {"Pending", "Running"}
        )
        return {pool: (count, pods[pool]) for pool, count in sorted(nodes.items())}


def api_client(stack: StackInfo) -> k8s.ApiClient:
    """An admin client of the local cluster (what the progress display reads with)."""
    return k8s_config.new_client_from_config(config_file=stack.kubeconfig)
