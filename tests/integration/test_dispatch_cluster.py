"""Live dispatch on the real test cluster: Pub/Sub emulator -> dispatcher -> kube-apiserver.

Limits are judged from the API server's watch history, never from the dispatcher's counters.
These tests use the load-grade emulator only (pstest's 95 messages/s would make a 5,000-order
swarm a test of pstest); the Pub/Sub semantics suite runs against both servers elsewhere.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config import Settings, load_settings
from dispatcher.local.process import DispatcherProcess
from dispatcher.service.assembly import Service
from dispatcher.service.wiring import connect_cluster
from tests.faults.kube_proxy import Faults, KubeFaultProxy
from tests.integration.cluster_support import (
    TEMPLATE,
    History,
    delete_workflows,
    ensure_test_template,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.pubsub,
    pytest.mark.slow,
    pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True),
]

CAPS = {"small": 4, "medium": 3, "large": 3}
SIZES = {"small": 1_000_000, "medium": 1_000_000_000, "large": 10**12}


@pytest.fixture
def env(k8s_cluster: Any, pubsub_clients: Any) -> Iterator[dict[str, Any]]:
    """A fresh environment label, orders topic/subscription and a dead-letter topic."""
    environment = f"t{uuid.uuid4().hex[:10]}"
    pub, sub, project = pubsub_clients.publisher, pubsub_clients.subscriber, pubsub_clients.project
    topic = pub.topic_path(project, f"{environment}-orders")
    subscription = sub.subscription_path(project, f"{environment}-sub")
    dlq = pub.topic_path(project, f"{environment}-dlq")
    pub.create_topic(name=topic)
    pub.create_topic(name=dlq)
    sub.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)
    with k8s_cluster.api_client() as api:
        ensure_test_template(api, k8s_cluster.namespace)
    selector = f"burst-dispatcher.io/environment={environment}"
    yield {
        "environment": environment,
        "topic": topic,
        "subscription": subscription,
        "dlq": dlq,
        "selector": selector,
    }
    with k8s_cluster.api_client() as api:
        delete_workflows(api, k8s_cluster.namespace, selector)


def settings_for(env: dict[str, Any], namespace: str, project: str, **limits: Any) -> Settings:
    base = load_settings(environ={})
    return base.model_copy(
        update={
            "environment": env["environment"],
            "namespace": namespace,
            "pubsub": base.pubsub.model_copy(
                update={
                    "project": project,
                    "subscription": env["subscription"],
                    "dead_letter_topic": env["dlq"],
                    "max_messages": 3000,
                }
            ),
            "limits": base.limits.model_copy(
                update={
                    "workflows_per_second": 20,
                    "burst": 10,
                    "max_workflow_objects": 10_000,
                    **limits,
                }
            ),
            "classes": [
                c.model_copy(
                    update={
                        "template": TEMPLATE,
                        "max_live_workflows": CAPS[c.name],
                        "max_linger_seconds": min(c.max_linger_seconds, 0.5),
                    }
                )
                for c in base.classes
            ],
        }
    )


def swarm(count: int, seed: int, run: str) -> list[tuple[str, str, bytes]]:
    """Orders unique to this run: Workflow names derive from order ids, and a name left over
    from an earlier run in the same namespace would (rightly) be taken as work already done."""
    rng = random.Random(seed)
    orders = []
    for i in range(count):
        roll = rng.random()
        size_class = "large" if roll < 0.01 else "medium" if roll < 0.08 else "small"
        order_id = f"{size_class}-{run}-{i:05d}"
        body = {
            "order_id": order_id,
            "input": {"uri": f"gs://in/{i}", "size_bytes": SIZES[size_class]},
        }
        orders.append((order_id, size_class, json.dumps(body).encode()))
    return orders


def publish(pubsub_clients: Any, topic: str, orders: list[tuple[str, str, bytes]]) -> None:
    futures = [pubsub_clients.publisher.publish(topic, data) for _, _, data in orders]
    for future in futures:
        future.result(timeout=60)


def start_service(
    settings: Settings, pubsub_clients: Any, kubeconfig: str, identity: str
) -> tuple[Service, Any]:
    backend = connect_cluster(settings, kubeconfig=kubeconfig, identity=identity)
    service = Service(
        settings,
        subscriber=pubsub_clients.subscriber,
        publisher=pubsub_clients.publisher,
        sink=backend.sink,
        cluster=backend.view,
        members=backend.membership,
        ledger=backend.ledger,
        claims=backend.claims,
        replica=identity,
    )
    service.start()
    return service, backend


def check_workflows(
    history: History, orders: list[tuple[str, str, bytes]], settings: Settings
) -> None:
    counts = history.order_ids()
    assert set(counts) == {oid for oid, _, _ in orders}
    duplicates = {oid: n for oid, n in counts.items() if n > 1}
    assert duplicates == {}, f"{len(duplicates)} orders in two Workflows"
    expected_class = {oid: c for oid, c, _ in orders}
    for body in history.bodies.values():
        size_class = body["metadata"]["labels"]["burst-dispatcher.io/size-class"]
        params = {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}
        spec = settings.size_class(size_class)
        assert params["node-pool"] == spec.node_pool and params["spot"] == str(spec.spot).lower()
        assert (params["cpu"], params["memory"]) == (spec.cpu, spec.memory)
        items = json.loads(params["orders"])
        assert len(items) <= spec.max_orders_per_workflow
        assert {expected_class[i["order_id"]] for i in items} == {size_class}
    for size_class, peak in history.peak_live.items():
        assert peak <= CAPS[size_class], f"{size_class}: {peak} live > cap {CAPS[size_class]}"


def test_swarm_of_5000_ends_as_expected_workflows_within_limits(
    env: dict[str, Any], k8s_cluster: Any, pubsub_clients: Any
) -> None:
    settings = settings_for(env, k8s_cluster.namespace, pubsub_clients.project)
    orders = swarm(5000, seed=1, run=env["environment"])
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, env["selector"]) as history,
    ):
        service, backend = start_service(settings, pubsub_clients, k8s_cluster.kubeconfig, "solo")
        try:
            publish(pubsub_clients, env["topic"], orders)
            history.wait_for_orders({oid for oid, _, _ in orders}, timeout=600)
        finally:
            service.stop(grace=30)
            backend.close()
    check_workflows(history, orders, settings)
    writes = backend.sink.api_writes
    print(
        f"\n5000 orders -> {len(history.bodies)} Workflows, {writes} create calls, "
        f"peak live {dict(history.peak_live)}"
    )


def test_two_replicas_share_limits_and_create_no_duplicate(
    env: dict[str, Any], k8s_cluster: Any, pubsub_clients: Any
) -> None:
    settings = settings_for(env, k8s_cluster.namespace, pubsub_clients.project)
    orders = swarm(1500, seed=2, run=env["environment"])
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, env["selector"]) as history,
    ):
        first = start_service(settings, pubsub_clients, k8s_cluster.kubeconfig, "replica-a")
        second = start_service(settings, pubsub_clients, k8s_cluster.kubeconfig, "replica-b")
        try:
            deadline = time.monotonic() + 30
            while len(first[1].membership.members()) < 2 or len(second[1].membership.members()) < 2:
                assert time.monotonic() < deadline, "replicas did not see each other"
                time.sleep(0.1)
            publish(pubsub_clients, env["topic"], orders)
            history.wait_for_orders({oid for oid, _, _ in orders}, timeout=600)
        finally:
            for service, backend in (first, second):
                service.stop(grace=30)
                backend.close()
    check_workflows(history, orders, settings)
    replicas = {
        b["metadata"]["labels"].get("burst-dispatcher.io/replica") for b in history.bodies.values()
    }
    assert replicas == {"replica-a", "replica-b"}


def test_faulty_api_server_loses_nothing(
    env: dict[str, Any], k8s_cluster: Any, pubsub_clients: Any, tmp_path: Path
) -> None:
    settings = settings_for(env, k8s_cluster.namespace, pubsub_clients.project)
    orders = swarm(1000, seed=3, run=env["environment"])
    faults = Faults(too_many_requests=0.1, server_error=0.1, reset=0.1, seed=3)
    with KubeFaultProxy(k8s_cluster.kubeconfig, faults) as proxy:
        kubeconfig = str(proxy.kubeconfig(tmp_path / "proxy.kubeconfig"))
        with (
            k8s_cluster.api_client() as api,
            History(api, k8s_cluster.namespace, env["selector"]) as history,
        ):
            service, backend = start_service(settings, pubsub_clients, kubeconfig, "faulty")
            try:
                publish(pubsub_clients, env["topic"], orders)

                def describe() -> str:
                    engine = service.runner.engine
                    return (
                        f"held {engine.held_orders()}, in flight {engine.in_flight()}, "
                        f"view live {[sum(backend.view.live_by_replica(c).values()) for c in CAPS]}, "
                        f"objects {backend.view.objects_total()}, faults {dict(faults.injected)}"
                    )

                history.wait_for_orders({oid for oid, _, _ in orders}, 300, describe)
            finally:
                service.stop(grace=30)
                backend.close()
    check_workflows(history, orders, settings)
    assert sum(faults.injected.values()) >= 10, faults.injected
    print(f"\ninjected {dict(faults.injected)}; forwarded {dict(faults.forwarded)}")


def test_sigkill_mid_swarm_then_restart_loses_and_duplicates_nothing(
    env: dict[str, Any],
    k8s_cluster: Any,
    pubsub_clients: Any,
    tmp_path: Path,
    pubsub_emulator: Any,
) -> None:
    import yaml

    settings = settings_for(env, k8s_cluster.namespace, pubsub_clients.project)
    config = tmp_path / "config.yaml"
    dump = settings.model_dump(mode="json")
    dump["service"]["http_port"] = 0
    config.write_text(yaml.safe_dump(dump))
    orders = swarm(3000, seed=4, run=env["environment"])
    args = ["--config", str(config), "--kubeconfig", k8s_cluster.kubeconfig]
    process_env = {"PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, env["selector"]) as history,
    ):
        first = DispatcherProcess(
            [*args, "--identity", "victim"], env=process_env, log_path=tmp_path / "first.log"
        )
        try:
            first.wait_for("ops_listening")
            publish(pubsub_clients, env["topic"], orders)
            deadline = time.monotonic() + 120
            while len(history.bodies) < 10:
                assert time.monotonic() < deadline, "no Workflow before the kill"
                time.sleep(0.05)
            first.kill()  # SIGKILL: no drain, held orders are simply not acked
        finally:
            first.close()
        created_before = len(history.bodies)
        second = DispatcherProcess(
            [*args, "--identity", "survivor"], env=process_env, log_path=tmp_path / "second.log"
        )
        try:
            second.wait_for("ops_listening")
            history.wait_for_orders({oid for oid, _, _ in orders}, timeout=600)
            assert second.terminate() == 0
        finally:
            second.close()
    counts = history.order_ids()
    duplicates = sum(1 for n in counts.values() if n > 1)
    print(
        f"\nkilled after {created_before} Workflows; {len(history.bodies)} in all; "
        f"{duplicates} duplicated orders"
    )
    check_workflows(history, orders, settings)
