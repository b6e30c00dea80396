"""What happens to a swarm, recorded as it happens: Workflows and Nodes watched, /metrics scraped.

Why watches and not snapshots: a node that an autoscaler adds and removes between two samples,
or a Workflow that finishes between them, would be missed or timed late by polling. Each
watched object keeps only what the figures need (class, consumer, order ids, when it finished,
how many of its orders were retried); a sampler thread then writes the time series (backlog,
held, live per class, nodes per pool, etcd bytes) and the raw scraped series the dashboard
picture is drawn from. Times are seconds on the monotonic clock of this process.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from prometheus_client.parser import text_string_to_metric_families

from bench.swarm_cost import NodeLife, node_shape
from dispatcher.core.render import ANNOTATION_ORDER_IDS, LABEL_CLASS, LABEL_ENVIRONMENT

POOL_LABEL = "cloud.google.com/gke-nodepool"
ENDED = frozenset({"Succeeded", "Failed", "Error"})
#: The dispatcher's own series the dashboard panels read (dispatcher/operator/dashboards.py).
SCRAPED = (
    "burst_dispatcher_workflows_created_total",
    "burst_dispatcher_held_orders",
    "burst_dispatcher_live_workflows",
    "burst_dispatcher_class_cap",
    "burst_dispatcher_orders_dead_lettered_total",
    "burst_dispatcher_create_failures_total",
)


@dataclass
class WorkflowSeen:
    environment: str
    size_class: str
    orders: frozenset[str]
    created: float
    phase: str = ""
    finished: float | None = None
    retried_attempts: int = 0
    retried_orders: int = 0
    deleted: bool = False


def retries(status: dict[str, Any]) -> tuple[int, int]:
    """(attempts retried, orders with a retried step) from a finished Workflow's node tree:
    a Retry node with more than one child ran its step again; its boundary is the order's DAG."""
    attempts, orders = 0, set()
    for node in (status.get("nodes") or {}).values():
        children = node.get("children") or []
        if node.get("type") == "Retry" and len(children) > 1:
            attempts += len(children) - 1
            orders.add(node.get("boundaryID", ""))
    return attempts, len(orders)


def _stream(
    list_call: Callable[..., Any],
    stop: threading.Event,
    on: Callable[..., None],
    *,
    pause: float = 1.0,
) -> None:
    """List, then watch from that resourceVersion; list again when the watch ends or fails.

    Any failure (410 Gone, a read timeout or a 5xx from a loaded API server) means list again:
    an exception that ended this thread once left a run's recorder blind for good (run
    prod-700-s5002, stopped: 6 Workflows never seen)."""
    while not stop.is_set():
        watcher = k8s_watch.Watch()
        try:
            listing = list_call()
            for item in listing["items"]:
                on("ADDED", item)
            version = listing["metadata"]["resourceVersion"]
            for event in watcher.stream(list_call, resource_version=version, timeout_seconds=30):
                on(event["type"], event["object"])
                if stop.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - every failure is answered by a new list
            print(f"swarm watch: {type(exc).__name__}: {exc}; listing again", file=sys.stderr)
            stop.wait(pause)
        finally:
            watcher.stop()


class Recorder:
    """Watches the cluster's Workflows (both consumers' namespaces; told apart by their
    environment label) and Nodes; samples the series."""

    def __init__(self, api: k8s.ApiClient, *, metrics_url: str, etcd_url: str) -> None:
        self._api = api
        self._metrics_url, self._etcd_url = metrics_url, etcd_url
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.workflows: dict[str, WorkflowSeen] = {}
        self.nodes: dict[str, NodeLife] = {}
        self.samples: list[dict[str, Any]] = []
        self.scrapes: list[dict[str, Any]] = []
        self._threads: list[threading.Thread] = []
        self._probe: Callable[[float], dict[str, Any]] = lambda _now: {}

    # -- watches
    def _workflow(self, kind: str, body: dict[str, Any]) -> None:
        now = time.monotonic()
        meta = body["metadata"]
        labels = meta.get("labels") or {}
        status = body.get("status") or {}
        with self._lock:
            # Keyed by namespace too: a naive Workflow for the same order ids has the same name
            # (render.workflow_name hashes them), and a run whose seed met an earlier run's
            # naive seed on the same stack lost 3 Workflows to that.
            key = f"{meta.get('namespace', '')}/{meta['name']}"
            seen = self.workflows.get(key)
            if seen is None:
                ids = json.loads((meta.get("annotations") or {}).get(ANNOTATION_ORDER_IDS, "[]"))
                seen = WorkflowSeen(
                    labels.get(LABEL_ENVIRONMENT, ""), labels.get(LABEL_CLASS, "?"),
                    frozenset(ids), now,
                )  # fmt: skip
                self.workflows[key] = seen
            if kind == "DELETED":
                seen.deleted = True
            phase = status.get("phase") or ""
            if phase in ENDED and seen.finished is None:
                seen.finished = now
                seen.retried_attempts, seen.retried_orders = retries(status)
            seen.phase = phase

    def _node(self, kind: str, body: Any) -> None:
        now = time.monotonic()
        data = body if isinstance(body, dict) else self._api.sanitize_for_serialization(body)
        name = data["metadata"]["name"]
        pool = (data["metadata"].get("labels") or {}).get(POOL_LABEL, "")
        if not pool:  # not a node pool's Node: the local dispatcher's stand-in (standin.py)
            return
        with self._lock:
            life = self.nodes.get(name)
            if life is None:
                machine, spot, vcpus, gib = node_shape(data)
                life = NodeLife(name, pool, machine, spot, vcpus, gib, born=now)
                self.nodes[name] = life
            if kind == "DELETED" and life.gone is None:
                self.nodes[name] = NodeLife(**{**life.__dict__, "gone": now})

    def _run(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self, probe: Callable[[float], dict[str, Any]], *, interval: float) -> None:
        """Start the watches and the sampler; ``probe(now)`` adds the caller's own figures."""
        custom, core = k8s.CustomObjectsApi(self._api), k8s.CoreV1Api(self._api)

        def workflows(**kw: Any) -> Any:
            return custom.list_cluster_custom_object("argoproj.io", "v1alpha1", "workflows", **kw)

        def nodes(**kw: Any) -> Any:
            if kw.get("watch"):
                return core.list_node(**kw)
            return self._api.sanitize_for_serialization(core.list_node(**kw))

        self._probe = probe
        self._run(lambda: _stream(workflows, self._stop, self._workflow))
        self._run(lambda: _stream(nodes, self._stop, self._node))
        self._run(lambda: self._sampler(interval))

    def stop(self) -> None:
        self._stop.set()

    # -- sampling
    def _sampler(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with contextlib.suppress(Exception):  # one lost sample is no reason to stop
                self.sample()

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        scrape = scrape_metrics(self._metrics_url)
        etcd = scrape_metrics(self._etcd_url, ("etcd_mvcc_db_total_size_in_bytes",))
        with self._lock:
            live: dict[str, int] = {}
            objects: dict[str, int] = {}
            in_workflows: dict[str, int] = {}
            for seen in self.workflows.values():
                env = seen.environment
                in_workflows[env] = in_workflows.get(env, 0) + len(seen.orders)
                if seen.deleted:
                    continue
                objects[env] = objects.get(env, 0) + 1
                if seen.finished is None:
                    key = f"{seen.environment}/{seen.size_class}"
                    live[key] = live.get(key, 0) + 1
            pools: dict[str, int] = {}
            for life in self.nodes.values():
                if life.gone is None:
                    pools[life.pool] = pools.get(life.pool, 0) + 1
        row = {
            "t": now,
            "live": live,
            "workflow_objects": objects,
            "orders_in_workflows": in_workflows,
            "held": {
                labels.get("size_class", "?"): value
                for labels, value in scrape.get("burst_dispatcher_held_orders", [])
            },
            "dead_lettered": sum(
                v for _, v in scrape.get("burst_dispatcher_orders_dead_lettered_total", [])
            ),
            "nodes": pools,
            "etcd_bytes": sum(v for _, v in etcd.get("etcd_mvcc_db_total_size_in_bytes", [])),
            **self._probe(now),
        }
        with self._lock:
            self.samples.append(row)
            if scrape:
                self.scrapes.append({"t": now, "series": scrape})
        return row

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold the watches still while the caller reads the recorded state."""
        with self._lock:
            yield


def scrape_metrics(
    url: str, names: tuple[str, ...] = SCRAPED
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The named series of one /metrics page ({} when it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def etcd_metrics_url(cluster_state: Path) -> str:
    """etcd's /metrics: etcd serves it on its client URL, which kube-apiserver was given."""
    pid = (cluster_state / "pids" / "kube-apiserver.pid").read_text().split()[0]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    servers = next(a.split("=", 1)[1] for a in argv if a.startswith("--etcd-servers="))
    return servers.split(",")[0].rstrip("/") + "/metrics"
