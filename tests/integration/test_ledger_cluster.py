"""The dedupe ledger against the real kube-apiserver: restarts, watches, pruning, 410, chunks.

Every test uses its own environment label, so it only sees its own ledger objects in the
shared namespace, and deletes them at the end.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from dispatcher.adapters.ledger import KubeLedger
from dispatcher.adapters.ledger_watch import decode, ledger_selector
from dispatcher.core import dedupe
from dispatcher.errors import PermanentError
from tests.cluster.plugin import K8sCluster
from tests.faults.kube_proxy import Faults, KubeFaultProxy
from tests.integration.cluster_support import (  # noqa: F401 - kube_api is the `api` fixture
    kube_api,
    scratch_environment,
)
from tests.polling import poll

pytestmark = pytest.mark.cluster
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Done:
    """Collects on_done results; ``wait`` polls with a deadline."""

    def __init__(self) -> None:
        self.results: list[BaseException | None] = []
        self._event = threading.Event()

    def __call__(self, error: BaseException | None) -> None:
        self.results.append(error)
        self._event.set()

    def wait(self, timeout: float = 20.0) -> BaseException | None:
        assert self._event.wait(timeout), "on_done was never called"
        return self.results[-1]


@pytest.fixture
def env(api: k8s.ApiClient, k8s_cluster: K8sCluster) -> Iterator[str]:
    with scratch_environment(api, k8s_cluster.namespace, "ledger", ledger_selector) as name:
        yield name


@pytest.fixture
def make(
    api: k8s.ApiClient, k8s_cluster: K8sCluster, env: str
) -> Iterator[Callable[..., KubeLedger]]:
    started: list[KubeLedger] = []

    def build(identity: str, **options: object) -> KubeLedger:
        ledger = KubeLedger(
            options.pop("api", api),
            namespace=str(options.pop("namespace", k8s_cluster.namespace)),
            environment=env,
            identity=identity,
            **{"flush_seconds": 0.05, **options},  # type: ignore[arg-type]
        )
        ledger.start(timeout=20)
        started.append(ledger)
        return ledger

    yield build
    for ledger in started:
        ledger.stop()


def ledger_objects(api: k8s.ApiClient, namespace: str, env: str) -> list[tuple[str, int, bytes]]:
    listing = k8s.CoreV1Api(api).list_namespaced_config_map(
        namespace, label_selector=ledger_selector(env)
    )
    return [decoded for obj in listing.items if (decoded := decode(obj)) is not None]


def test_a_replaced_replica_sees_what_the_old_one_recorded(
    make: Callable[..., KubeLedger],
) -> None:
    old = make("pod-a")
    ids = [f"order-{n}" for n in range(50)]
    done = Done()
    old.record(ids, done)
    assert all(old.contains(order_id) for order_id in ids)  # at once, before the write
    assert done.wait() is None
    old.stop()
    new = make("pod-b")
    assert new.synced()
    assert all(new.contains(order_id) for order_id in ids)
    assert not new.contains("order-50")


def test_stop_writes_what_is_still_buffered(make: Callable[..., KubeLedger]) -> None:
    old = make("pod-slow", flush_seconds=3600.0)
    done = Done()
    old.record(["buffered"], done)
    assert done.results == []  # nothing written yet: the next flush is an hour away
    old.stop()
    assert done.results == [None]
    assert make("pod-next").contains("buffered")


def test_live_replicas_see_each_others_records_through_the_watch(
    make: Callable[..., KubeLedger],
) -> None:
    one, two = make("pod-1"), make("pod-2")
    one.record(["from-one"], Done())
    two.record(["from-two"], Done())
    poll(lambda: two.contains("from-one"), what="pod-2 sees pod-1's record")
    poll(lambda: one.contains("from-two"), what="pod-1 sees pod-2's record")


def test_buckets_past_the_window_are_pruned_everywhere(
    api: k8s.ApiClient, k8s_cluster: K8sCluster, env: str, make: Callable[..., KubeLedger]
) -> None:
    clock = Clock()
    first_bucket = dedupe.bucket_start(clock.now)
    writer = make("pod-w", clock=clock, window_seconds=HOUR, prune_seconds=1e9)
    reader = make("pod-r", clock=clock, window_seconds=HOUR, prune_seconds=1e9)
    first = Done()
    writer.record(["old-order"], first)
    assert first.wait() is None
    clock.now = first_bucket + HOUR  # the next bucket; the first is still inside the window
    second = Done()
    writer.record(["new-order"], second)
    assert second.wait() is None
    poll(lambda: reader.contains("new-order"), what="reader sees the new bucket")
    clock.now = first_bucket + 2 * HOUR - 1
    assert reader.prune() == 0
    assert len(ledger_objects(api, k8s_cluster.namespace, env)) == 2
    clock.now = first_bucket + 2 * HOUR  # end of the first bucket + the window
    assert reader.prune() == 1
    poll(lambda: not writer.contains("old-order"), what="writer drops the pruned bucket")
    assert reader.contains("new-order") and writer.contains("new-order")
    remaining = ledger_objects(api, k8s_cluster.namespace, env)
    assert [bucket for _, bucket, _ in remaining] == [first_bucket + int(HOUR)]


def test_an_expired_watch_relists_and_misses_nothing(
    api: k8s.ApiClient,
    k8s_cluster: K8sCluster,
    env: str,
    make: Callable[..., KubeLedger],
    tmp_path: Path,
) -> None:
    writer = make("pod-w")
    faults = Faults()
    with KubeFaultProxy(k8s_cluster.kubeconfig, faults) as proxy:
        proxied = k8s_config.new_client_from_config(
            config_file=str(proxy.kubeconfig(tmp_path / "proxy.yaml"))
        )
        reader = make("pod-r", api=proxied, watch_seconds=1)
        assert reader.stats().relists == 1
        early = Done()
        writer.record(["before-the-gap"], early)
        assert early.wait() is None
        with faults._lock:
            faults.gone_watches = 3  # three watches in a row answered 410 Gone
        writer.record(["during-the-gap"], Done())
        poll(lambda: reader.stats().relists >= 4, what="a relist after each 410")
        assert faults.injected["410"] == 3
        poll(lambda: reader.contains("during-the-gap"), what="reader caught up")
        name = ledger_objects(api, k8s_cluster.namespace, env)[0][0]
        k8s.CoreV1Api(api).delete_namespaced_config_map(name, k8s_cluster.namespace)
        poll(lambda: not reader.contains("before-the-gap"), what="deletion seen")
        reader.stop()


def test_the_watch_runs_through_bookmarks_and_timeouts_without_failing(
    make: Callable[..., KubeLedger],
) -> None:
    # The server sends BOOKMARK events near the end of a watch (seen with 5 s watches).
    writer, reader = make("pod-w"), make("pod-r", watch_seconds=5)
    writer.record(["across-watches"], Done())
    poll(lambda: reader.stats().watches >= 2, timeout=30, what="two watches ended")
    assert reader.contains("across-watches")
    stats = reader.stats()
    assert (stats.watch_failures, stats.relists) == (0, 1)


def test_a_full_chunk_rolls_over_to_a_new_object(
    api: k8s.ApiClient, k8s_cluster: K8sCluster, env: str, make: Callable[..., KubeLedger]
) -> None:
    per_chunk = 10
    writer = make("pod-c", chunk_bytes=per_chunk * dedupe.DIGEST_BYTES)
    ids = [f"chunked-{n}" for n in range(25)]
    done = Done()
    writer.record(ids[:7], done)
    assert done.wait() is None
    done = Done()
    writer.record(ids[7:], done)
    assert done.wait() is None
    objects = ledger_objects(api, k8s_cluster.namespace, env)
    sizes = sorted(len(blob) // dedupe.DIGEST_BYTES for _, _, blob in objects)
    assert sizes == [5, 10, 10]
    stored = {value for _, _, blob in objects for value in dedupe.unpack(blob)}
    assert stored == {dedupe.digest(order_id) for order_id in ids}
    reader = make("pod-r")
    assert all(reader.contains(order_id) for order_id in ids)


def test_two_processes_with_one_identity_lose_nothing(
    api: k8s.ApiClient, k8s_cluster: K8sCluster, env: str, make: Callable[..., KubeLedger]
) -> None:
    # A misconfiguration (two pods, one identity): both aim at the same object names; the
    # second create answers 409 and that writer moves on to the next chunk number.
    first, second = make("same-pod"), make("same-pod")
    for n in range(10):
        a, b = Done(), Done()
        first.record([f"first-{n}"], a)
        second.record([f"second-{n}"], b)
        assert a.wait() is None and b.wait() is None
    stored = {
        v
        for _, _, blob in ledger_objects(api, k8s_cluster.namespace, env)
        for v in dedupe.unpack(blob)
    }
    expected = {dedupe.digest(f"{who}-{n}") for who in ("first", "second") for n in range(10)}
    assert expected <= stored


def test_a_refused_write_is_reported_and_kept_locally(make: Callable[..., KubeLedger]) -> None:
    nowhere = make("pod-x", namespace=f"no-such-{uuid.uuid4().hex[:6]}")
    done = Done()
    nowhere.record(["unstored"], done)
    assert isinstance(done.wait(), PermanentError)
    assert nowhere.contains("unstored")


def test_an_append_stored_but_unanswered_is_neither_lost_nor_doubled(
    api: k8s.ApiClient,
    k8s_cluster: K8sCluster,
    env: str,
    make: Callable[..., KubeLedger],
    tmp_path: Path,
) -> None:
    faults = Faults(only_methods=frozenset({"PUT"}))
    with KubeFaultProxy(k8s_cluster.kubeconfig, faults) as proxy:
        proxied = k8s_config.new_client_from_config(
            config_file=str(proxy.kubeconfig(tmp_path / "proxy.yaml"))
        )
        writer = make("pod-amb", api=proxied)
        first = Done()
        writer.record([f"amb-{n}" for n in range(5)], first)  # the create (POST) goes through
        assert first.wait() is None
        with faults._lock:
            faults.lost_responses = 1
        second = Done()
        writer.record([f"amb-{n}" for n in range(5, 10)], second)
        assert second.wait() is None
        assert faults.injected["lost"] == 1
        third = Done()  # the writer's copy is stale now: a 409, re-read, then the append
        writer.record([f"amb-{n}" for n in range(10, 12)], third)
        assert third.wait() is None
        writer.stop()
    [(_, _, blob)] = ledger_objects(api, k8s_cluster.namespace, env)
    assert list(dedupe.unpack(blob)) == [dedupe.digest(f"amb-{n}") for n in range(12)]
