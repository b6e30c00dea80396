"""The stage a swarm run needs, set up and taken down: stack, limits, naive side, recorder.

Why its own module: bench/swarm.py should read as the measurement (publish, follow, compute),
while this holds the plumbing around it: `dispatcher local up` (reused when running), the bench
limits written into the dispatcher's ConfigMap the way `limits set` writes them (only live
fields, so the running dispatcher takes them without a restart), the naive consumer's topic,
subscription and template, extra kwok nodes on the fixed stack, and the recorder's watches.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from rich.console import Console

from bench.swarm_naive import NaiveConsumer, ensure_template, naive_settings
from bench.swarm_watch import Recorder, etcd_metrics_url, scrape_metrics
from dispatcher.adapters.configmap import DEFAULT_NAME, SEMAPHORES_NAME, read_config, write_config
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.config import parse_settings
from dispatcher.local import overlay, topics
from dispatcher.local import stack as local_stack
from dispatcher.local.swarm import api_client
from dispatcher.operator.limit_edits import LimitChange, edit_limits

#: Live limits for the run: the Argo semaphores' values as caps (the template's backstop, so the
#: dispatcher's own cap is what binds), a creation rate that does not hold a swarm back.
BENCH_LIMITS: dict[str, Any] = {
    "workflows_per_second": 20,
    "burst": 50,
    "max_workflow_objects": 5000,
}
KARPENTER_CRD = "nodepools.karpenter.sh"


@dataclasses.dataclass
class Rig:
    stack: local_stack.StackInfo
    naive_stack: local_stack.StackInfo
    api: k8s.ApiClient
    recorder: Recorder
    naive: NaiveConsumer
    environment: str
    naive_environment: str
    limits: dict[str, Any]
    karpenter: bool
    published: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def dead_lettered(self) -> int:
        found = scrape_metrics(f"http://127.0.0.1:{self.stack.ops_port}/metrics")
        return int(sum(v for _, v in found.get("burst_dispatcher_orders_dead_lettered_total", [])))

    def progress(self, environment: str, valid: frozenset[str]) -> tuple[int, int, int]:
        """(Workflows finished, Workflows live, valid orders in any Workflow) of one consumer."""
        finished = live = 0
        seen: set[str] = set()
        with self.recorder.snapshot():
            for w in self.recorder.workflows.values():
                mine = w.orders & valid
                if w.environment != environment or not mine:
                    continue
                seen |= mine
                if w.finished is None:
                    live += 1
                else:
                    finished += 1
        return finished, live, len(seen)

    def autoscaled(self) -> bool:
        return self.karpenter

    def pools_empty(self, shared: frozenset[str]) -> bool:
        with self.recorder.snapshot():
            return all(n.gone is not None or n.pool in shared for n in self.recorder.nodes.values())

    def zero_since(self, shared: frozenset[str]) -> float | None:
        with self.recorder.snapshot():
            lives = [n for n in self.recorder.nodes.values() if n.pool not in shared]
        if any(n.gone is None for n in lives):
            return None
        return max((n.gone for n in lives if n.gone is not None), default=None)

    def config_text(self) -> str:
        return read_config(self.api, namespace=self.stack.namespace, name=DEFAULT_NAME).text


def apply_limits(api: k8s.ApiClient, stack: local_stack.StackInfo) -> dict[str, Any]:
    """Write the bench limits into the ConfigMap; wait until the dispatcher reports the caps."""
    core = k8s.CoreV1Api(api)
    semaphores = core.read_namespaced_config_map(SEMAPHORES_NAME, stack.namespace).data or {}
    caps = {name: int(value) for name, value in semaphores.items()}
    changes = [LimitChange(k, v) for k, v in BENCH_LIMITS.items()]
    changes += [LimitChange("max_live_workflows", v, size_class=k) for k, v in caps.items()]
    current = read_config(api, namespace=stack.namespace, name=DEFAULT_NAME)
    edit = edit_limits(current.text, changes, source=current.source)
    if edit.rows:
        write_config(api, current, edit.text, dry_run=False)
    url = f"http://127.0.0.1:{stack.ops_port}/metrics"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = scrape_metrics(url).get("burst_dispatcher_class_cap", [])
        if {labels.get("size_class"): int(v) for labels, v in found} == caps:
            return {**BENCH_LIMITS, "max_live_workflows": caps}
        time.sleep(1.0)
    raise TimeoutError(f"the dispatcher did not take the bench caps {caps} within 120 s")


def _naive_topic(stack: local_stack.StackInfo, run: str) -> tuple[str, str]:
    with topics.emulator(stack.emulator_host):
        publisher, subscriber = publisher_client(), subscriber_client()
        topic = str(publisher.topic_path(stack.project, f"orders-naive-{run}"))
        subscription = str(subscriber.subscription_path(stack.project, f"orders-naive-{run}"))
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
        publisher.stop()
        subscriber.close()
    return topic, subscription


def _has_karpenter(api: k8s.ApiClient) -> bool:
    try:
        k8s.ApiextensionsV1Api(api).read_custom_resource_definition(KARPENTER_CRD)
    except ApiException:
        return False
    return True


@contextlib.contextmanager
def rig(args: argparse.Namespace, *, console: Console) -> Iterator[Rig]:
    stack = local_stack.up(
        lambda line: console.print(line, highlight=False),
        autoscaling=args.autoscaling,
        economics=args.economics if args.autoscaling else None,
        environment=args.environment,
    )
    api = api_client(stack)
    limits = apply_limits(api, stack)
    console.print(f"bench limits in force: {limits}")
    config = read_config(api, namespace=stack.namespace, name=DEFAULT_NAME)
    settings = parse_settings(config.text, source=config.source, environ={})
    run = str(int(time.time()))
    naive_env = f"{settings.environment}-naive"
    topic, subscription = _naive_topic(stack, run)
    ensure_template(api, stack.namespace, shipped=settings.classes[0].template)
    extra: list[dict[str, Any]] = []
    karpenter = _has_karpenter(api)
    if args.extra_nodes and not karpenter:
        extra = _extra_nodes(api, args.extra_nodes)
        console.print(f"{len(extra)} extra kwok nodes for the run")
    recorder = Recorder(
        api,
        metrics_url=f"http://127.0.0.1:{stack.ops_port}/metrics",
        etcd_url=etcd_metrics_url(Path(stack.state) / "cluster"),
    )  # fmt: skip
    recorder.start(lambda _now: {}, interval=args.interval)
    with topics.emulator(stack.emulator_host):
        naive = NaiveConsumer(
            api, settings=naive_settings(settings, environment=naive_env), subscription=subscription
        )
        setup = Rig(
            stack=stack, naive_stack=dataclasses.replace(stack, orders_topic=topic), api=api,
            recorder=recorder, naive=naive, environment=settings.environment,
            naive_environment=naive_env, limits=limits, karpenter=karpenter,
        )  # fmt: skip
        try:
            yield setup
        finally:
            recorder.stop()
            naive.stop()
            if extra:
                overlay.delete_nodes(api, extra)


def _extra_nodes(api: k8s.ApiClient, per_pool: int) -> list[dict[str, Any]]:
    """Copies of the stack's kwok nodes (one per dev pool), ``per_pool`` of each."""
    core = k8s.CoreV1Api(api)
    made = []
    for node in core.list_node(label_selector="type=kwok-rehearsal").items:
        body = api.sanitize_for_serialization(node)
        for i in range(per_pool):
            name = f"bench-{body['metadata']['name']}-{i}"
            labels = {**body["metadata"]["labels"], "kubernetes.io/hostname": name}
            made.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": body["metadata"].get("annotations") or {},
                    },
                    "spec": {"taints": body["spec"].get("taints") or []},
                    "status": {
                        "capacity": body["status"]["capacity"],
                        "allocatable": body["status"]["allocatable"],
                    },
                }
            )
    overlay.ensure_nodes(api, made)
    return made
