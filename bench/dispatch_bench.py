"""Dispatcher benchmark: what batching and admission cost and save, against the bare client.

Why: the dispatcher's claims (keeps up with a swarm, writes far fewer objects than one Workflow
per message, a bounded publish -> Workflow delay, bounded memory while limits hold orders back)
only mean something next to what the same machine can do without it. So one run, on one
machine, on the load-grade Pub/Sub emulator (``fast``, started here), measures:

(a) ceiling    - a google-cloud-pubsub streaming-pull subscriber that only acks;
(b) naive      - one Workflow per message, created synchronously in the callback, then ack;
(c) dispatcher - ``dispatcher.service.Service`` with the built-in classes, limits raised so
                 that nothing saturates (throughput from a backlog; latency at a paced rate);
    engine     - the engine thread's calls per order on one thread, no Pub/Sub (explains (c));
    hold       - RSS of a fresh dispatcher process holding N orders back (class cap 0).

(b) and (c) write to the same kind of sink: ``MemorySink`` (default) or, with ``--sink kube``,
the real ``KubeWorkflowSink`` against the local test cluster (``python -m tests.cluster``),
where the Workflows created are deleted by label at the end.

Usage:
    .venv/bin/python -m bench.dispatch_bench                       # memory sink, 20,000 orders
    .venv/bin/python -m bench.dispatch_bench --sink kube --json kube.json  # 5,000 / 500 naive
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dispatcher.adapters.sinks import CreateResult, MemorySink, WorkflowSink
from dispatcher.config import Settings, load_settings
from dispatcher.core.batching import Batch
from dispatcher.core.classify import Classifier
from dispatcher.core.clock import monotonic
from dispatcher.core.decisions import Ack, Create
from dispatcher.core.engine import ClusterState, Engine, LocalClusterState
from dispatcher.core.order import Rejection, parse_order
from dispatcher.core.render import LABEL_ENVIRONMENT, render_workflow
from dispatcher.service.assembly import Service
from dispatcher.service.metrics import Metrics

PROJECT = "bench-project"
REPO = Path(__file__).resolve().parents[1]
ORDER_SIZE_BYTES = 1_000_000  # 1 MB input: the "small" class of the built-in configuration
DEFAULT_ORDERS = {"memory": 20_000, "kube": 5_000}  # (a), (c): 50 orders per Workflow in (c)
DEFAULT_NAIVE_ORDERS = {"memory": 20_000, "kube": 500}  # (b): one Workflow each, Argo runs them
TARGET_RATIO = 0.80
TARGET_WRITE_FACTOR = 10.0
TARGET_LATENCY_SLACK_S = 1.0
TARGET_RSS_BYTES = 250_000_000  # 250 MB
HIGH_RATE = 10_000.0  # workflows/s: high enough never to hold a batch back
HIGH_CAP = 100_000  # live Workflows per class (the configuration's maximum)
CLK_TCK = os.sysconf("SC_CLK_TCK")

console = Console(stderr=True)


# -- the fast emulator (a small copy of tests.pubsub.plugin.run_binary, keeping the pid) --------
@dataclass(frozen=True)
class Emulator:
    host: str
    pid: int


@contextlib.contextmanager
def fast_emulator() -> Iterator[Emulator]:
    """Start the built ``fastsub`` server on a free loopback port."""
    from tests.pubsub import binaries

    path = binaries.binary("fast")
    if path is None:
        raise SystemExit(
            f"the fast Pub/Sub emulator is not built (expected in {binaries.build_dir()}): "
            "run tests/pubsub/build.sh"
        )
    from tests.pubsub.plugin import start_server

    with (
        tempfile.TemporaryDirectory(prefix="bench-pubsub-") as tmp,
        start_server(path, Path(tmp)) as server,
    ):
        yield Emulator(server.host, server.pid)


def proc_cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, niced, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, values[1], sum(values)


def rss_bytes() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes, from /proc/self/status."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


@dataclass
class Cpu:
    """CPU used during a phase, in cores (1.0 = one core busy for the whole phase)."""

    bench: float
    emulator: float
    machine: float  # everything on the machine, this benchmark included
    niced: float  # the part of ``machine`` run at a lower priority (other people's builds)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process's threads, summed by thread name (pool numbers dropped)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        name = names.get(int(task.name), f"{comm} (native)")
        name = re.sub(r"^Thread-\d+ \((\w+)\)$", r"\1", name)
        name = re.sub(r"[_-]\d+$", "", name)
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


class CpuMeter:
    def __init__(self, emulator_pid: int) -> None:
        self._pid = emulator_pid
        self._threads = thread_cpu_seconds()
        self.started = time.perf_counter()
        self._self = proc_cpu_seconds()
        self._emu = proc_cpu_seconds(emulator_pid)
        self._busy, self._niced, self._total = machine_jiffies()

    def read(self) -> Cpu:
        wall = max(1e-9, time.perf_counter() - self.started)
        busy, niced, total = machine_jiffies()
        scale = (os.cpu_count() or 1) / max(1, total - self._total)
        return Cpu(
            bench=round((proc_cpu_seconds() - self._self) / wall, 2),
            emulator=round((proc_cpu_seconds(self._pid) - self._emu) / wall, 2),
            machine=round((busy - self._busy) * scale, 2),
            niced=round((niced - self._niced) * scale, 2),
        )

    def threads_per_order(self, orders: int) -> dict[str, float]:
        """Microseconds of CPU per order by thread name, largest first (>= 0.5 µs)."""
        before = self._threads
        spent = {
            name: (cpu - before.get(name, 0.0)) / orders * 1e6
            for name, cpu in thread_cpu_seconds().items()
        }
        ranked = sorted(spent.items(), key=lambda kv: -kv[1])
        return {name: round(us, 1) for name, us in ranked if us >= 0.5}


def wait_for(done: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s:.0f} s")
        time.sleep(0.005)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil(q/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- orders, sinks, metrics -----------------------------------------------------------------
def order_payload(run: str, phase: str, index: int) -> bytes:
    """A small valid order (~110 bytes) of the built-in ``small`` class."""
    body = {
        "order_id": f"{run}-{phase}-{index:06d}",
        "input": {"uri": f"gs://bench-in/{phase}/{index:06d}", "size_bytes": ORDER_SIZE_BYTES},
    }
    return json.dumps(body, separators=(",", ":")).encode()


class CountingSink:
    """Counts create calls (API writes for the memory sink) in front of the real sink."""

    def __init__(self, inner: WorkflowSink) -> None:
        self.inner = inner
        self._calls = itertools.count(1)
        self.calls = 0

    def create(self, body: dict[str, Any]) -> CreateResult:
        self.calls = next(self._calls)  # atomic under the GIL: no lock in the hot path
        return self.inner.create(body)

    def api_writes(self) -> int:
        """HTTP writes including retries for the Kubernetes sink; create calls otherwise."""
        writes = getattr(self.inner, "api_writes", None)
        return int(writes) if isinstance(writes, int) else self.calls


class BenchMetrics(Metrics):
    """The service's metrics, plus the exact publish -> created age of every order."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.created_orders = 0
        self.ages: list[float] = []
        self.workflows = 0

    def submitted(self, batch: Batch[Any], result: str, latency: float) -> None:
        now = time.time()  # the create has just returned (the runner calls this right after)
        ages = [now - t.receipts[0].publish_time.timestamp() for t in batch.tickets]
        super().submitted(batch, result, latency)
        with self._lock:
            self.created_orders += len(batch.tickets)
            self.workflows += 1
            self.ages.extend(ages)

    def held(self) -> int:
        total = 0.0
        for metric in self.held_orders.collect():
            for sample in metric.samples:
                total += sample.value
        return int(total)


# -- results --------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    name: str
    orders: int
    seconds: float
    orders_per_second: float
    cpu: Cpu
    bench_cpu_us_per_order: float
    thread_cpu_us_per_order: dict[str, float]
    create_calls: int | None = None
    api_writes: int | None = None
    writes_per_order: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seconds = round(self.seconds, 3)
        self.orders_per_second = round(self.orders_per_second)


@dataclass
class HoldResult:
    held_orders: int
    seconds_to_hold: float
    rss_bytes: int
    hwm_bytes: int
    baseline_rss_bytes: int
    bytes_per_held_order: float


@dataclass
class LatencyResult:
    orders: int
    publish_rate: float
    achieved_publish_rate: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    mean_s: float
    workflows: int
    linger_s: float
    cpu: Cpu


# -- the bench ------------------------------------------------------------------------------
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
        self.publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=1000, max_bytes=4 << 20, max_latency=0.01
            )
        )
        self.subscriber = pubsub_v1.SubscriberClient()
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
        from tests.cluster import cluster
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
            cluster = backend.view
            close = backend.close
        service = Service(
            settings,
            subscriber=self.subscriber,
            publisher=self.publisher,
            sink=sink,
            cluster=cluster,
            metrics=metrics,
            replica=self.environment if self.kube is not None else None,
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


# -- the phases -----------------------------------------------------------------------------
def phase_ceiling(bench: Bench, orders: int) -> PhaseResult:
    """(a) pull + ack only: what the client and server can do on this machine."""
    subscription = bench.backlog("ceiling", orders)
    counter = itertools.count(1)
    acked = [0]

    def callback(message: Any) -> None:
        message.ack()
        acked[0] = next(counter)

    seconds, cpu, threads = timed_subscription(
        bench,
        subscription,
        callback,
        done=lambda: acked[0] >= orders,
        orders=orders,
        what="ceiling",
    )
    return PhaseResult(
        "ceiling",
        orders,
        seconds,
        orders / seconds,
        cpu,
        cpu_per_order(cpu, seconds, orders),
        threads,
    )


def phase_naive(bench: Bench, orders: int) -> PhaseResult:
    """(b) one Workflow per message, created in the callback before the ack."""
    subscription = bench.backlog("naive", orders)
    settings = bench.settings(subscription)
    classifier = Classifier(settings)
    max_bytes = settings.orders.max_order_bytes
    sink = bench.sink()
    counter = itertools.count(1)
    failures = itertools.count(1)
    acked = [0]
    failed = [0]

    def callback(message: Any) -> None:
        parsed = parse_order(message.data, message.attributes, max_bytes=max_bytes)
        if isinstance(parsed, Rejection):
            failed[0] = next(failures)
            message.nack()
            return
        now = time.monotonic()
        ticket = classifier.ticket(parsed, now=now, receipt=message)
        if isinstance(ticket, Rejection):
            failed[0] = next(failures)
            message.nack()
            return
        body = render_workflow(
            Batch(ticket.size_class, (ticket,), now),
            settings=settings,
            message_ids=[str(message.message_id)],
        )
        try:
            sink.create(body)
        except Exception:  # noqa: BLE001 - counted; Pub/Sub redelivers
            failed[0] = next(failures)
            message.nack()
            return
        message.ack()
        acked[0] = next(counter)

    seconds, cpu, threads = timed_subscription(
        bench, subscription, callback, done=lambda: acked[0] >= orders, orders=orders, what="naive"
    )
    writes = sink.api_writes()
    return PhaseResult(
        "naive",
        orders,
        seconds,
        orders / seconds,
        cpu,
        cpu_per_order(cpu, seconds, orders),
        threads,
        create_calls=sink.calls,
        api_writes=writes,
        writes_per_order=writes / orders,
        extra={"failed_callbacks": failed[0]},
    )


def phase_dispatcher(bench: Bench, orders: int) -> PhaseResult:
    """(c) the dispatcher from a backlog, below saturation (limits raised)."""
    subscription = bench.backlog("dispatcher", orders)
    with bench.service(subscription) as (service, sink, metrics):
        meter = CpuMeter(bench.emulator.pid)
        service.start()
        engine = service.runner.engine
        wait_for(
            lambda: metrics.created_orders >= orders,
            timeout_s=deadline_for(orders),
            what="dispatcher",
        )
        # The engine acks in the same turn in which it lets go of the orders.
        wait_for(lambda: engine.idle() and engine.in_flight() == 0, timeout_s=30, what="acks")
        cpu = meter.read()
        seconds = time.perf_counter() - meter.started
        threads = meter.threads_per_order(orders)
    bench.drop(subscription)
    writes = sink.api_writes()
    return PhaseResult(
        "dispatcher",
        orders,
        seconds,
        orders / seconds,
        cpu,
        cpu_per_order(cpu, seconds, orders),
        threads,
        create_calls=sink.calls,
        api_writes=writes,
        writes_per_order=writes / orders,
        extra={"workflows": metrics.workflows, "orders_per_workflow": orders / metrics.workflows},
    )


def phase_latency(bench: Bench, orders: int, rate: float) -> LatencyResult:
    """(c) publish -> Workflow created per order, publishing at a steady ``rate``."""
    topic, subscription = bench.subscription("latency")
    linger = max(c.max_linger_seconds for c in bench.base.classes if c.name == "small")
    with bench.service(subscription) as (service, _sink, metrics):
        service.start()
        time.sleep(0.5)  # the stream is open before the first publish
        meter = CpuMeter(bench.emulator.pid)
        start = time.perf_counter()
        futures = []
        for i in range(orders):
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            futures.append(bench.publisher.publish(topic, order_payload(bench.run, "lat", i)))
        published_in = time.perf_counter() - start
        for future in futures:
            future.result(timeout=60)
        wait_for(
            lambda: metrics.created_orders >= orders,
            timeout_s=linger + 60,
            what="latency run",
        )
        cpu = meter.read()
        ages = sorted(metrics.ages)
    bench.drop(subscription)
    return LatencyResult(
        orders=orders,
        publish_rate=rate,
        achieved_publish_rate=round(orders / published_in, 1),
        p50_s=round(percentile(ages, 50), 4),
        p90_s=round(percentile(ages, 90), 4),
        p99_s=round(percentile(ages, 99), 4),
        max_s=round(ages[-1], 4),
        mean_s=round(sum(ages) / len(ages), 4),
        workflows=metrics.workflows,
        linger_s=linger,
        cpu=cpu,
    )


def cpu_per_order(cpu: Cpu, seconds: float, orders: int) -> float:
    """Microseconds of this process's CPU per order."""
    return round(cpu.bench * seconds / orders * 1e6, 1)


@dataclass
class FakeDelivery:
    """Stands in for a Pub/Sub message where no server is involved."""

    data: bytes
    message_id: str
    publish_time: datetime
    attributes: dict[str, str] = field(default_factory=dict)
    delivery_attempt: int | None = None
    acked: bool = False

    def ack(self) -> None:
        self.acked = True

    def nack(self) -> None:
        self.acked = False


def engine_alone(bench: Bench, orders: int) -> dict[str, float]:
    """The engine thread's work per order on one thread, without Pub/Sub or thread hand-offs.

    The same calls the runner makes per event (``metrics.received``, ``receive``, ``tick``,
    carrying out decisions, ``observe_engine``), with the create done inline on a memory sink.
    It says how much of (c)'s CPU per order is the dispatcher's own work.
    """
    settings = bench.settings("unused")
    now = datetime.now(UTC)
    deliveries = [
        FakeDelivery(order_payload(bench.run, "engine", i), str(i), now) for i in range(orders)
    ]
    engine: Engine[FakeDelivery] = Engine(settings, cluster=LocalClusterState(), clock=monotonic)
    metrics = Metrics()
    sink = MemorySink()
    gc.collect()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for delivery in deliveries:
        metrics.received(1, 0)
        decisions = engine.receive(delivery, delivery.data, delivery.attributes)
        decisions.extend(engine.tick())
        while decisions:
            decision = decisions.pop()
            if isinstance(decision, Ack):
                decision.receipt.ack()
            elif isinstance(decision, Create):
                body = render_workflow(
                    decision.batch,
                    settings=settings,
                    message_ids=[r.message_id for r in decision.batch.receipts()],
                )
                result = sink.create(body)
                metrics.submitted(decision.batch, result.value, 0.0)
                decisions.extend(engine.created(decision.name))
        metrics.observe_engine(engine)
    cpu = time.process_time() - cpu_started
    seconds = time.perf_counter() - started
    if not all(d.acked for d in deliveries):
        raise RuntimeError("engine alone: some orders were not acked")
    return {
        "orders": orders,
        "seconds": round(seconds, 3),
        "cpu_us_per_order": round(cpu / orders * 1e6, 1),
        "orders_per_second": round(orders / seconds),
    }


def phase_hold(bench: Bench, orders: int) -> HoldResult:
    """RSS of a fresh dispatcher process while ``orders`` are held back (class caps 0)."""
    subscription = bench.backlog("hold", orders)
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=bench.emulator.host)
    command = [
        sys.executable,
        "-m",
        "bench.dispatch_bench",
        "--hold-child",
        "--hold",
        str(orders),
        "--subscription",
        subscription,
        "--dead-letter-topic",
        bench.dead_letter_topic,
    ]
    done = subprocess.run(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, timeout=300, check=False
    )
    bench.drop(subscription)
    if done.returncode != 0:
        raise RuntimeError(f"hold child failed with code {done.returncode}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return HoldResult(**found)


def hold_child(orders: int, subscription: str, dead_letter_topic: str) -> int:
    """Runs in its own process, so the RSS read is the dispatcher's and nothing else's."""
    from google.cloud import pubsub_v1

    import dispatcher.service.wiring  # noqa: F401 - a deployed replica has the Kubernetes client loaded

    base = load_settings(environ={})
    settings = base.model_copy(
        update={
            "pubsub": base.pubsub.model_copy(
                update={
                    "project": PROJECT,
                    "subscription": subscription,
                    "dead_letter_topic": dead_letter_topic,
                    "max_messages": min(100_000, orders + orders // 10),
                }
            ),
            "classes": [c.model_copy(update={"max_live_workflows": 0}) for c in base.classes],
        }
    )
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    metrics = BenchMetrics()
    service = Service(
        settings,
        subscriber=subscriber,
        publisher=publisher,
        sink=MemorySink(),
        cluster=LocalClusterState(),
        metrics=metrics,
    )
    gc.collect()
    baseline, _ = rss_bytes()
    start = time.perf_counter()
    service.start()
    try:
        wait_for(lambda: metrics.held() >= orders, timeout_s=120, what="held orders")
        seconds = time.perf_counter() - start
        time.sleep(1.0)  # let the client's lease bookkeeping settle
        held = metrics.held()
        rss, hwm = rss_bytes()
    finally:
        service.stop(grace=30)
        publisher.stop()
        subscriber.close()
    result = HoldResult(
        held_orders=held,
        seconds_to_hold=round(seconds, 2),
        rss_bytes=rss,
        hwm_bytes=hwm,
        baseline_rss_bytes=baseline,
        bytes_per_held_order=round((rss - baseline) / max(1, held), 1),
    )
    print(json.dumps(asdict(result)), flush=True)
    return 0


# -- the report -----------------------------------------------------------------------------
@dataclass
class Target:
    figure: str
    measured: str
    target: str
    met: bool | None


def judge(
    phases: dict[str, PhaseResult], latency: LatencyResult | None, hold: HoldResult | None
) -> list[Target]:
    targets: list[Target] = []
    ceiling, naive, dispatcher = phases["ceiling"], phases["naive"], phases["dispatcher"]
    ratio = dispatcher.orders_per_second / ceiling.orders_per_second
    targets.append(
        Target(
            "(c)/(a) throughput",
            f"{ratio:.0%} ({dispatcher.orders_per_second:,.0f} / "
            f"{ceiling.orders_per_second:,.0f} orders/s)",
            f">= {TARGET_RATIO:.0%}",
            ratio >= TARGET_RATIO,
        )
    )
    if naive.writes_per_order and dispatcher.writes_per_order:
        factor = naive.writes_per_order / dispatcher.writes_per_order
        targets.append(
            Target(
                "API writes per order (b)/(c)",
                f"{factor:.0f}x fewer ({naive.writes_per_order:.3f} vs "
                f"{dispatcher.writes_per_order:.3f})",
                f">= {TARGET_WRITE_FACTOR:.0f}x fewer",
                factor >= TARGET_WRITE_FACTOR,
            )
        )
    if latency is not None:
        bound = latency.linger_s + TARGET_LATENCY_SLACK_S
        targets.append(
            Target(
                f"publish -> created p50 / p99 at {latency.publish_rate:,.0f}/s",
                f"{latency.p50_s:.3f} s / {latency.p99_s:.3f} s (max {latency.max_s:.3f} s)",
                f"<= linger + 1 s = {bound:.1f} s",
                latency.p99_s <= bound,
            )
        )
    if hold is not None:
        targets.append(
            Target(
                f"RSS holding {hold.held_orders:,} orders",
                f"{hold.rss_bytes / 1e6:.0f} MB ({hold.rss_bytes / 2**20:.0f} MiB; "
                f"{hold.bytes_per_held_order:,.0f} B/order above a "
                f"{hold.baseline_rss_bytes / 1e6:.0f} MB start)",
                f"<= {TARGET_RSS_BYTES / 1e6:.0f} MB",
                hold.rss_bytes <= TARGET_RSS_BYTES,
            )
        )
    return targets


def render(
    phases: dict[str, PhaseResult],
    engine: dict[str, float],
    latency: LatencyResult | None,
    hold: HoldResult | None,
    targets: list[Target],
    sink: str,
) -> None:
    out = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(
        title=f"Throughput from a backlog (sink: {sink}; CPU in cores of {os.cpu_count()})"
    )
    for column in ("phase", "orders", "seconds", "orders/s", "API writes", "writes/order"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    for column in ("CPU bench", "µs CPU/order", "CPU emulator", "CPU machine (niced)"):
        table.add_column(column, justify="right")
    labels = {"ceiling": "(a) pull+ack", "naive": "(b) naive", "dispatcher": "(c) dispatcher"}
    for key in ("ceiling", "naive", "dispatcher"):
        p = phases[key]
        table.add_row(
            labels[key],
            f"{p.orders:,}",
            f"{p.seconds:.2f}",
            f"{p.orders_per_second:,.0f}",
            "-" if p.api_writes is None else f"{p.api_writes:,}",
            "-" if p.writes_per_order is None else f"{p.writes_per_order:.3f}",
            f"{p.cpu.bench:.2f}",
            f"{p.bench_cpu_us_per_order:.0f}",
            f"{p.cpu.emulator:.2f}",
            f"{p.cpu.machine:.2f} ({p.cpu.niced:.2f})",
        )
    table.add_row(
        "(c) engine alone",
        f"{engine['orders']:,.0f}",
        f"{engine['seconds']:.2f}",
        f"{engine['orders_per_second']:,.0f}",
        "",
        "",
        "1 thread",
        f"{engine['cpu_us_per_order']:.0f}",
        "-",
        "",
    )
    out.print(table)
    by_thread = Table(title="CPU per order by thread of the benchmark process (µs)")
    by_thread.add_column("phase")
    by_thread.add_column("threads (largest first)")
    for key in ("ceiling", "naive", "dispatcher"):
        spent = phases[key].thread_cpu_us_per_order
        by_thread.add_row(labels[key], ", ".join(f"{n} {us:.0f}" for n, us in spent.items()))
    out.print(by_thread)
    if latency is not None:
        lat = Table(
            title=f"(c) publish -> Workflow created, paced at {latency.publish_rate:,.0f}/s "
            f"(achieved {latency.achieved_publish_rate:,.0f}/s)"
        )
        for column in ("orders", "workflows", "p50", "p90", "p99", "max", "mean", "linger"):
            lat.add_column(column, justify="right")
        lat.add_column("CPU bench / emulator / machine (niced)", justify="right")
        lat.add_row(
            f"{latency.orders:,}",
            f"{latency.workflows:,}",
            *(
                f"{v:.3f} s"
                for v in (
                    latency.p50_s,
                    latency.p90_s,
                    latency.p99_s,
                    latency.max_s,
                    latency.mean_s,
                )
            ),
            f"{latency.linger_s:g} s",
            f"{latency.cpu.bench:.2f} / {latency.cpu.emulator:.2f} / {latency.cpu.machine:.2f}"
            f" ({latency.cpu.niced:.2f})",
        )
        out.print(lat)
    if hold is not None:
        mem = Table(title="Fresh dispatcher process holding orders back (class caps 0)")
        for column in ("held", "to hold", "RSS", "peak RSS", "RSS at start", "per held order"):
            mem.add_column(column, justify="right")
        mem.add_row(
            f"{hold.held_orders:,}",
            f"{hold.seconds_to_hold:.1f} s",
            f"{hold.rss_bytes / 1e6:.0f} MB",
            f"{hold.hwm_bytes / 1e6:.0f} MB",
            f"{hold.baseline_rss_bytes / 1e6:.0f} MB",
            f"{hold.bytes_per_held_order:,.0f} B",
        )
        out.print(mem)
    verdicts = Table(title="Targets")
    for column in ("figure", "measured", "target", "verdict"):
        verdicts.add_column(column)
    for t in targets:
        verdict = "-" if t.met is None else "[green]met[/]" if t.met else "[red]MISSED[/]"
        verdicts.add_row(t.figure, t.measured, t.target, verdict)
    out.print(verdicts)


def machine_facts(sink: str) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "google-cloud-pubsub": package_version("google-cloud-pubsub"),
        "grpcio": package_version("grpcio"),
        "sink": sink,
    }


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch_bench",
        description="Ceiling vs naive consumer vs dispatcher on the fast Pub/Sub emulator.",
    )
    parser.add_argument(
        "--orders", type=int, help="orders for (a) and (c) (default 20,000; kube 5,000)"
    )
    parser.add_argument(
        "--naive-orders",
        type=int,
        help="orders for (b), one Workflow each (default: --orders; kube 500)",
    )
    parser.add_argument(
        "--sink",
        choices=["memory", "kube"],
        default="memory",
        help="where (b) and (c) create Workflows: MemorySink, or the local test cluster",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--latency-rate", type=float, default=500.0, help="paced publishes/s")
    parser.add_argument(
        "--latency-seconds", type=float, default=10.0, help="publishing time of the latency run"
    )
    parser.add_argument(
        "--hold", type=int, default=20_000, help="orders held for the RSS figure (0 = skip)"
    )
    parser.add_argument(
        "--flow-messages",
        type=int,
        default=5_000,
        help="flow control max_messages for (a), (b) and (c)",
    )
    parser.add_argument("--hold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscription", help=argparse.SUPPRESS)
    parser.add_argument("--dead-letter-topic", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dispatcher.logging import configure

    configure("json", "warning")  # one line per Workflow would be measured too
    if args.hold_child:
        return hold_child(args.hold, args.subscription, args.dead_letter_topic)
    orders = args.orders or DEFAULT_ORDERS[args.sink]
    naive_orders = args.naive_orders or (
        args.orders if args.orders and args.sink == "memory" else DEFAULT_NAIVE_ORDERS[args.sink]
    )
    latency_orders = min(orders, int(args.latency_rate * args.latency_seconds))
    started = time.perf_counter()
    facts = machine_facts(args.sink)
    with fast_emulator() as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        bench = Bench(emulator, sink=args.sink, flow_messages=args.flow_messages)
        try:
            if args.sink == "kube":
                bench.connect_kube()
            phases: dict[str, PhaseResult] = {}
            console.log(f"(a) ceiling: {orders:,} orders")
            phases["ceiling"] = phase_ceiling(bench, orders)
            console.log(f"(c) engine alone: {orders:,} orders, one thread, no Pub/Sub")
            engine = engine_alone(bench, orders)
            console.log(f"(c) dispatcher: {orders:,} orders from a backlog")
            phases["dispatcher"] = phase_dispatcher(bench, orders)
            bench.delete_workflows()
            console.log(f"(c) latency: {latency_orders:,} orders at {args.latency_rate:,.0f}/s")
            latency = phase_latency(bench, latency_orders, args.latency_rate)
            bench.delete_workflows()
            hold = None
            if args.hold > 0:
                console.log(f"hold: a fresh process holding {args.hold:,} orders")
                hold = phase_hold(bench, args.hold)
            console.log(f"(b) naive: {naive_orders:,} orders, one Workflow each")
            phases["naive"] = phase_naive(bench, naive_orders)
        finally:
            bench.delete_workflows()
            bench.close()
    targets = judge(phases, latency, hold)
    render(phases, engine, latency, hold, targets, args.sink)
    total = time.perf_counter() - started
    console.log(f"benchmark took {total:.0f} s")
    if args.json is not None:
        report = {
            "command": " ".join(["python -m bench.dispatch_bench", *(argv or sys.argv[1:])]),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(total, 1),
            "machine": facts,
            "phases": {k: asdict(v) for k, v in phases.items()},
            "engine_alone": engine,
            "latency": None if latency is None else asdict(latency),
            "hold": None if hold is None else asdict(hold),
            "targets": [asdict(t) for t in targets],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
