"""One run's Pub/Sub plumbing and the dispatcher wired like ``dispatcher run``.

A :class:`Bench` owns the clients (from :mod:`dispatcher.adapters.pubsub_clients`, so the
emulator channel has production's message limits), a run id that keeps topics and Workflows of
different runs apart, and, with ``--sink kube``, the connection to the local test cluster.
"""

from __future__ import annotations

import contextlib
import gc
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.measure import Cpu, CpuMeter, Emulator, wait_for
from bench.workload import BenchMetrics, CountingSink, order_payload
from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.adapters.ledger_memory import MemoryLedger
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.adapters.sinks import MemorySink
from dispatcher.config import Settings, load_settings
from dispatcher.core.ports import ClusterState, Members, OrderLedger
from dispatcher.core.render import LABEL_ENVIRONMENT
from dispatcher.service.assembly import Service

PROJECT = "bench-project"
HIGH_RATE = 10_000.0  # workflows/s: high enough never to hold a batch back
HIGH_CAP = 100_000  # live Workflows per class (the configuration's maximum)


@dataclass
class KubeTarget:
    kubeconfig: str
    namespace: str
    api: Any
    template: str


class Bench:
    def __init__(self, emulator: Emulator, *, sink: str, flow_messages: int) -> None:
        from google.cloud import pubsub_v1

        self.emulator = emulator
        self.sink_kind = sink
        self.flow_messages = flow_messages
        self.run = uuid.uuid4().hex[:8]
        self.environment = f"bench-{self.run}"
        self.base = load_settings(environ={})
        self.publisher = publisher_client(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=1000, max_bytes=4 << 20, max_latency=0.01
            )
        )
        self.subscriber = subscriber_client()
        self.dead_letter_topic = self._topic("dead-letter")
        self.kube: KubeTarget | None = None
        self._names: list[tuple[str, str]] = []

    # -- Pub/Sub plumbing
    def _topic(self, name: str) -> str:
        topic = str(self.publisher.topic_path(PROJECT, f"{self.run}-{name}"))
        self.publisher.create_topic(name=topic)
        return topic

    def subscription(self, name: str) -> tuple[str, str]:
        """A fresh topic and subscription (60 s ack deadline; the client extends leases)."""
        topic = self._topic(name)
        subscription = str(self.subscriber.subscription_path(PROJECT, f"{self.run}-{name}"))
        self.subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
        self._names.append((topic, subscription))
        return topic, subscription

    def backlog(self, name: str, orders: int) -> str:
        """A subscription with ``orders`` small orders waiting on it."""
        topic, subscription = self.subscription(name)
        futures = [
            self.publisher.publish(topic, order_payload(self.run, name, i)) for i in range(orders)
        ]
        for future in futures:
            future.result(timeout=120)
        return subscription

    def drop(self, subscription: str) -> None:
        for topic, sub in self._names:
            if sub == subscription:
                with contextlib.suppress(Exception):
                    self.subscriber.delete_subscription(subscription=sub, timeout=30)
                with contextlib.suppress(Exception):
                    self.publisher.delete_topic(topic=topic, timeout=30)
        gc.collect()

    def close(self) -> None:
        self.publisher.stop()
        self.subscriber.close()

    # -- the cluster (kube sink only)
    def connect_kube(self) -> None:
        from dispatcher.adapters.kubeclient import api_client
        from dispatcher.local import cluster
        from tests.integration.cluster_support import TEMPLATE, ensure_test_template

        info = cluster.load_info()
        if info is None or not cluster.is_healthy(info):
            raise SystemExit(
                "--sink kube needs a healthy test cluster (python -m tests.cluster status)"
            )
        api = api_client(info.kubeconfig, pool_size=16)
        ensure_test_template(api, info.namespace)
        self.kube = KubeTarget(info.kubeconfig, info.namespace, api, TEMPLATE)

    def delete_workflows(self) -> None:
        if self.kube is None:
            return
        from tests.integration.cluster_support import delete_workflows

        delete_workflows(
            self.kube.api, self.kube.namespace, f"{LABEL_ENVIRONMENT}={self.environment}"
        )

    # -- the dispatcher's settings
    def settings(self, subscription: str, *, hold: int = 0) -> Settings:
        """Built-in classes and shapes; limits raised (or, with ``hold``, a class cap of 0)."""
        base = self.base
        kube = self.kube
        class_update: dict[str, Any] = {"max_live_workflows": 0 if hold else HIGH_CAP}
        if kube is not None:
            class_update["template"] = kube.template
        max_messages = min(100_000, hold + hold // 10) if hold else self.flow_messages
        return base.model_copy(
            update={
                "environment": self.environment,
                "namespace": kube.namespace if kube is not None else base.namespace,
                "pubsub": base.pubsub.model_copy(
                    update={
                        "project": PROJECT,
                        "subscription": subscription,
                        "dead_letter_topic": self.dead_letter_topic,
                        "max_messages": max_messages,
                    }
                ),
                "limits": base.limits.model_copy(
                    update={
                        "workflows_per_second": HIGH_RATE,
                        "burst": HIGH_CAP,
                        "max_workflow_objects": 1_000_000,
                    }
                ),
                "classes": [c.model_copy(update=class_update) for c in base.classes],
            }
        )

    def sink(self) -> CountingSink:
        if self.kube is None:
            return CountingSink(MemorySink())
        from dispatcher.adapters.kube import KubeWorkflowSink

        return CountingSink(KubeWorkflowSink(self.kube.api, namespace=self.kube.namespace))

    @contextlib.contextmanager
    def service(self, subscription: str) -> Iterator[tuple[Service, CountingSink, BenchMetrics]]:
        """A started dispatcher on ``subscription``, wired like ``dispatcher run``."""
        settings = self.settings(subscription)
        metrics = BenchMetrics()
        cluster: ClusterState
        members: Members = StaticMembers()
        ledger: OrderLedger = MemoryLedger()
        replica = ""
        close: Callable[[], None] = lambda: None  # noqa: E731 - trivial default
        if self.kube is None:
            sink = self.sink()
            cluster = LocalClusterState()
        else:
            from dispatcher.service.wiring import connect_cluster

            backend = connect_cluster(
                settings, kubeconfig=self.kube.kubeconfig, identity=self.environment
            )
            sink = CountingSink(backend.sink)
            cluster, members, ledger = backend.view, backend.membership, backend.ledger
            replica = self.environment
            close = backend.close
        service = Service(
            settings,
            subscriber=self.subscriber,
            publisher=self.publisher,
            sink=sink,
            cluster=cluster,
            members=members,
            ledger=ledger,
            metrics=metrics,
            replica=replica,
        )
        try:
            yield service, sink, metrics
        finally:
            with contextlib.suppress(RuntimeError):  # never started
                service.stop(grace=15)
            close()


def deadline_for(orders: int) -> float:
    return max(60.0, orders / 100)


def timed_subscription(
    bench: Bench,
    subscription: str,
    callback: Callable[[Any], None],
    *,
    done: Callable[[], bool],
    orders: int,
    what: str,
) -> tuple[float, Cpu, dict[str, float]]:
    """Pull ``subscription`` through ``callback`` until ``done``; seconds, CPU, CPU per thread.

    The subscription is deleted afterwards. Shared by the phases that are plain subscribers.
    """
    from google.cloud import pubsub_v1

    flow = pubsub_v1.types.FlowControl(max_messages=bench.flow_messages)
    meter = CpuMeter(bench.emulator.pid)
    future = bench.subscriber.subscribe(subscription, callback, flow_control=flow)
    try:
        wait_for(done, timeout_s=deadline_for(orders), what=what)
        cpu = meter.read()
        seconds = time.perf_counter() - meter.started
        threads = meter.threads_per_order(orders)
    finally:
        future.cancel()
        with contextlib.suppress(Exception):
            future.result(timeout=30)
    bench.drop(subscription)
    return seconds, cpu, threads
