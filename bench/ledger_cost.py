"""What the dedupe ledger costs per 10,000 orders: API calls and bytes, on a real API server.

The cost of an append grows with the object it rewrites, and the number of appends with how
many orders each flush carries (arrival rate x flush period). So the bench drives the real
``KubeLedger`` against the test cluster for several orders-per-flush and chunk sizes, flushing
by hand (no waiting on wall-clock periods), and checks that a second replica started after
the run sees every order. It also measures the in-memory index's bytes per digest.

    python -m bench.ledger_cost                      # the local test cluster
    python -m bench.ledger_cost --kubeconfig k.yaml --namespace burst-dispatcher
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from dispatcher.adapters.kubeclient import api_client
from dispatcher.adapters.ledger import KubeLedger
from dispatcher.adapters.ledger_watch import ledger_selector
from dispatcher.core import dedupe


@dataclass(frozen=True)
class Run:
    per_flush: int
    chunk_kib: int
    orders: int
    calls: dict[str, int]
    request_bytes: int
    watch_bytes: int
    stored_bytes: int
    objects: int
    seconds: float
    list_seconds: float


class WatchBytes:
    """Counts the bytes one more watching replica receives while the run writes.

    Short server-side watch timeouts, resumed from the last resourceVersion, let ``stop``
    end the thread without closing a socket another thread is reading.
    """

    def __init__(self, api: Any, *, namespace: str, environment: str) -> None:
        self.received = 0
        self._core = k8s.CoreV1Api(api)
        self._namespace = namespace
        self._selector = ledger_selector(environment)
        listing = self._core.list_namespaced_config_map(namespace, label_selector=self._selector)
        self._version = str(listing.metadata.resource_version)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            response = self._core.list_namespaced_config_map(
                self._namespace,
                label_selector=self._selector,
                watch=True,
                resource_version=self._version,
                timeout_seconds=1,
                _preload_content=False,
            )
            for line in response.read().splitlines():
                self.received += len(line) + 1
                event = json.loads(line)
                self._version = event["object"]["metadata"].get("resourceVersion", self._version)

    def stop(self, quiet_seconds: float = 1.5, limit: float = 15.0) -> int:
        """Stop once nothing has arrived for ``quiet_seconds`` (the last events are in)."""
        deadline = time.monotonic() + limit
        seen, since = self.received, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet_seconds:
            time.sleep(0.1)
            if self.received != seen:
                seen, since = self.received, time.monotonic()
        self._stop.set()
        self._thread.join()
        return self.received


def one_run(api: Any, *, namespace: str, orders: int, per_flush: int, chunk_kib: int) -> Run:
    environment = f"bench-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {
        "namespace": namespace,
        "environment": environment,
        "flush_seconds": 3600.0,  # flushed by hand below
        "prune_seconds": 1e9,
        "chunk_bytes": chunk_kib * 1024,
    }
    writer = KubeLedger(api, identity="bench-writer", **options)
    writer.start()
    watcher = WatchBytes(api, namespace=namespace, environment=environment)
    began = time.monotonic()
    try:
        for first in range(0, orders, per_flush):
            ids = [f"{environment}-{n}" for n in range(first, min(first + per_flush, orders))]
            writer.record(ids, lambda _: None)
            if not writer.flush():
                raise RuntimeError("a ledger write failed; see the log")
        seconds = time.monotonic() - began
        stats = writer.stats()
        watch_bytes = watcher.stop()
        began = time.monotonic()
        reader = KubeLedger(api, identity="bench-reader", **options)
        reader.start()
        list_seconds = time.monotonic() - began
        missing = sum(not reader.contains(f"{environment}-{n}") for n in range(orders))
        reader.stop()
        if missing:
            raise RuntimeError(f"a restarted replica misses {missing} of {orders} orders")
        objects = len(
            k8s.CoreV1Api(api)
            .list_namespaced_config_map(namespace, label_selector=ledger_selector(environment))
            .items
        )
    finally:
        writer.stop()
        k8s.CoreV1Api(api).delete_collection_namespaced_config_map(
            namespace, label_selector=ledger_selector(environment)
        )
    return Run(
        per_flush=per_flush,
        chunk_kib=chunk_kib,
        orders=orders,
        calls=stats.calls,
        request_bytes=stats.request_bytes,
        watch_bytes=watch_bytes,
        stored_bytes=stats.stored_bytes,
        objects=objects,
        seconds=seconds,
        list_seconds=list_seconds,
    )


def index_bytes_per_digest(count: int = 100_000) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = dedupe.DigestIndex()
    blob = dedupe.pack(dedupe.digest(f"memory-{n}") for n in range(count))
    index.put("one", bucket=0, blob=blob)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / count


@contextlib.contextmanager
def test_cluster() -> Iterator[tuple[str, str]]:
    """The local test cluster, reused or started (and then stopped) like a test session."""
    from dispatcher.local import cluster

    info = cluster.attach(os.getpid())
    try:
        yield info.kubeconfig, info.namespace
    finally:
        cluster.detach(info, os.getpid())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="default: the local test cluster (reused or started)")
    parser.add_argument("--namespace", help="default: the test cluster's dispatcher namespace")
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument(
        "--runs",
        default="10x16,50x16,500x16,50x64,50x900",
        help="comma-separated ORDERS_PER_FLUSHxCHUNK_KIB pairs",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        kubeconfig, namespace = args.kubeconfig, args.namespace
        if kubeconfig is None:
            kubeconfig, default_namespace = stack.enter_context(test_cluster())
            namespace = namespace or default_namespace
        report(api_client(kubeconfig), namespace=namespace, args=args)
    return 0


def report(api: Any, *, namespace: str, args: argparse.Namespace) -> None:
    per_10k = 10_000 / args.orders
    print(
        f"{'per flush':>9} {'chunk':>7} {'calls':>7} {'create':>6} {'update':>6} {'sent MiB':>8} "
        f"{'watch MiB':>9} {'stored KiB':>10} {'objects':>7} {'write s':>7} {'list s':>6}"
    )
    for spec in args.runs.split(","):
        per_flush, chunk_kib = (int(part) for part in spec.split("x"))
        run = one_run(
            api, namespace=namespace, orders=args.orders, per_flush=per_flush, chunk_kib=chunk_kib
        )
        calls = sum(run.calls.values())
        print(
            f"{run.per_flush:>9} {run.chunk_kib:>5}Ki {calls * per_10k:>7.0f} "
            f"{run.calls.get('create', 0) * per_10k:>6.0f} "
            f"{run.calls.get('update', 0) * per_10k:>6.0f} "
            f"{run.request_bytes * per_10k / 2**20:>8.2f} "
            f"{run.watch_bytes * per_10k / 2**20:>9.2f} "
            f"{run.stored_bytes * per_10k / 1024:>10.1f} {run.objects:>7} "
            f"{run.seconds:>7.2f} {run.list_seconds:>6.2f}"
        )
    print(f"figures per 10,000 orders; in-memory index: {index_bytes_per_digest():.0f} B/order")


if __name__ == "__main__":
    raise SystemExit(main())
