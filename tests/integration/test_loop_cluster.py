"""The decision loop's promises on the real servers (issue 8, Deliver 7).

Each test drives the service against the Pub/Sub emulator and, where Workflows matter, the
real kube-apiserver (through the fault proxy where a fault is the point). What happened is
read back from the servers: Workflows from the API server's watch history, delivery
attempts and dead letters from the emulator, never from the dispatcher's own counters.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
from dispatcher.adapters.kube import KubeWorkflowSink
from dispatcher.adapters.kubeclient import api_client
from dispatcher.adapters.sinks import MemorySink
from dispatcher.config import Settings
from dispatcher.core.admission import HoldReason
from dispatcher.core.render import (
    LABEL_REPLICA,
    WORKFLOW_PARAMETERS,
    workflow_name,
)
from dispatcher.service.assembly import Service
from tests.faults.kube_proxy import Faults, KubeFaultProxy
from tests.integration.cluster_support import (
    DONE,
    TEMPLATE,
    History,
    create_workflow,
    delete_workflows,
    ensure_test_template,
)
from tests.integration.test_dispatch_cluster import settings_for, start_service
from tests.polling import poll

pytestmark = [pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True)]
on_cluster = [pytest.mark.cluster, pytest.mark.pubsub]

NEAR_LIMIT = 9_999_800  # the poison of defect 1: dead-lettered, its dlq_* push it over 10 MB


@dataclass
class Space:
    """One test's names: an environment label, an orders topic/subscription, a DLQ."""

    environment: str
    topic: str
    subscription: str
    dlq: str  # the dispatcher's dead-letter topic
    dlq_subscription: str
    policy_dlq_subscription: str | None  # Pub/Sub's own dead-letter policy, when asked for

    @property
    def selector(self) -> str:
        return f"burst-dispatcher.io/environment={self.environment}"

    def env(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "subscription": self.subscription,
            "dlq": self.dlq,
        }


@pytest.fixture
def make_space(make_topic_subscription: Any) -> Callable[..., Space]:
    def make(max_delivery_attempts: int | None = None) -> Space:
        environment = f"t{uuid.uuid4().hex[:10]}"
        orders = make_topic_subscription(
            prefix=f"{environment}-o", max_delivery_attempts=max_delivery_attempts
        )
        dlq = make_topic_subscription(prefix=f"{environment}-d")
        return Space(
            environment,
            orders.topic,
            orders.subscription,
            dlq.topic,
            dlq.subscription,
            orders.dead_letter_subscription,
        )

    return make


@pytest.fixture
def cleanup(k8s_cluster: Any) -> Iterator[list[str]]:
    """The test WorkflowTemplate exists; the Workflows of each listed selector go afterwards."""
    with k8s_cluster.api_client() as api:
        ensure_test_template(api, k8s_cluster.namespace)
    selectors: list[str] = []
    yield selectors
    with k8s_cluster.api_client() as api:
        for selector in selectors:
            delete_workflows(api, k8s_cluster.namespace, selector)


def with_caps(settings: Settings, **caps: int) -> Settings:
    return settings.model_copy(
        update={
            "classes": [
                c.model_copy(update={"max_live_workflows": caps.get(c.name, c.max_live_workflows)})
                for c in settings.classes
            ]
        }
    )


def with_template(settings: Settings, size_class: str, template: str) -> Settings:
    return settings.model_copy(
        update={
            "classes": [
                c.model_copy(update={"template": template}) if c.name == size_class else c
                for c in settings.classes
            ]
        }
    )


def order(order_id: str, size: int = 1000) -> bytes:
    return json.dumps(
        {"order_id": order_id, "input": {"uri": "gs://in/x", "size_bytes": size}}
    ).encode()


def publish(clients: Any, topic: str, *bodies: bytes) -> None:
    for future in [clients.publisher.publish(topic, body) for body in bodies]:
        future.result(timeout=60)


def pull(clients: Any, subscription: str, *, expected: int, timeout: float) -> list[Any]:
    """Received messages (with delivery_attempt), acked; until ``expected`` arrived and one
    more pull comes back empty, so that extras are seen too."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = clients.subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        received = list(response.received_messages)
        if received:
            clients.subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in received]
            )
            got.extend(received)
        elif len(got) >= expected:
            return got
    raise AssertionError(f"{len(got)} of {expected} messages arrived on {subscription}")


def nothing_left(clients: Any, subscription: str, seconds: float = 12.0) -> list[Any]:
    """Whatever comes back within ``seconds`` (longer than the 10 s ack deadline)."""
    leftovers: list[Any] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not leftovers:
        response = clients.subscriber.pull(subscription=subscription, max_messages=100, timeout=3)
        leftovers.extend(response.received_messages)
    return leftovers


def held(service: Service) -> int:
    return sum(service.runner.engine.held_orders().values())


def local_service(settings: Settings, clients: Any, sink: Any = None, **extra: Any) -> Service:
    """The whole loop on the real emulator, Workflows into ``sink`` (memory by default)."""
    return Service(
        settings,
        subscriber=clients.subscriber,
        publisher=clients.publisher,
        sink=sink if sink is not None else MemorySink(),
        cluster=LocalClusterState(),
        members=StaticMembers(),
        **extra,
    )


def orders_in(sink: MemorySink) -> list[str]:
    return [
        oid
        for body in list(sink.bodies.values())
        for oid in json.loads(body["metadata"]["annotations"]["burst-dispatcher.io/order-ids"])
    ]


class LoseWorkflowCreates(Faults):
    """Only Workflow POSTs are lost (stored, then the connection reset); nothing else."""

    def pick(self, method: str, path: str) -> str | None:
        if method == "POST" and path.split("?")[0].endswith("/workflows"):
            with self._lock:
                if self.lost_responses > 0:
                    self.lost_responses -= 1
                    return "lost"
        return None


# -- (1) an ambiguous create -----------------------------------------------------------------
@pytest.mark.cluster
@pytest.mark.pubsub
def test_an_ambiguous_create_ends_in_one_workflow_and_acks_its_orders(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
    tmp_path: Path,
) -> None:
    space = make_space()
    cleanup.append(space.selector)
    settings = settings_for(space.env(), k8s_cluster.namespace, pubsub_clients.project)
    ids = [f"amb-{space.environment}-{i}" for i in range(3)]
    # Six lost answers use up the sink's whole retry budget: the engine gets an ambiguous
    # outcome and must settle it under the same name (by the watch or a 409), not re-batch.
    faults = LoseWorkflowCreates(lost_responses=6)
    with (
        KubeFaultProxy(k8s_cluster.kubeconfig, faults) as proxy,
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, space.selector) as history,
    ):
        kubeconfig = str(proxy.kubeconfig(tmp_path / "proxy.kubeconfig"))
        service, backend = start_service(settings, pubsub_clients, kubeconfig, "ambiguous")
        try:
            publish(pubsub_clients, space.topic, *(order(i) for i in ids))
            history.wait_for_orders(set(ids), timeout=60)
            poll(lambda: faults.injected["lost"] >= 6, 60, "six lost create answers")
            poll(lambda: service.runner.engine.idle(), 60, "the engine to settle its orders")
            assert service.stop(grace=20)
        finally:
            backend.close()
    counts = history.order_ids()
    assert dict(counts) == dict.fromkeys(ids, 1), counts
    assert faults.injected["lost"] == 6
    # The sink's retries ran out: the engine itself got the ambiguous outcome and settled it
    # under the same name (at most one more POST, answered 409), never as a new batch.
    unknown = service.metrics.registry.get_sample_value(
        "burst_dispatcher_create_failures_total", {"kind": "unknown"}
    )
    assert unknown is not None and unknown >= 1
    assert backend.sink.api_writes <= 7 * len(history.bodies)
    assert nothing_left(pubsub_clients, space.subscription) == [], "an order was not acked"


# -- (2) drain during backpressure ------------------------------------------------------------
@pytest.mark.pubsub
def test_drain_during_backpressure_spends_no_delivery_attempt(
    make_space: Callable[..., Space], pubsub_clients: Any
) -> None:
    space = make_space(max_delivery_attempts=5)  # so the emulator reports delivery_attempt
    settings = with_caps(
        settings_for(space.env(), "burst-dispatcher", pubsub_clients.project),
        small=0,
        medium=0,
        large=0,
    )
    ids = {f"bp-{space.environment}-{i:02d}" for i in range(20)}
    publish(pubsub_clients, space.topic, *(order(i) for i in sorted(ids)))
    for round_ in ("first", "restarted"):
        service = local_service(settings, pubsub_clients)
        service.start()
        try:
            poll(lambda s=service: held(s) == len(ids), 30, f"{round_}: every order held")
        finally:
            assert service.stop(grace=20), f"{round_}: drain did not settle"
    received = pull(pubsub_clients, space.subscription, expected=len(ids), timeout=30)
    by_order = sorted(json.loads(r.message.data)["order_id"] for r in received)
    assert by_order == sorted(ids), "one copy per order, none lost"
    attempts = {r.delivery_attempt for r in received}
    assert attempts == {1}, f"delivery attempts spent by backpressure and drain: {attempts}"
    assert all("reparked_from" in r.message.attributes for r in received)
    assert nothing_left(pubsub_clients, space.subscription) == []


# -- (3) two replicas holding copies of one order ---------------------------------------------
@pytest.mark.cluster
@pytest.mark.pubsub
def test_two_replicas_holding_copies_of_one_order_create_one_workflow(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
) -> None:
    a, b = make_space(), make_space()
    b.environment = a.environment  # one deployment, two subscriptions: each replica a copy
    cleanup.append(a.selector)
    held_back = with_caps(
        settings_for(a.env(), k8s_cluster.namespace, pubsub_clients.project), small=0
    )
    settings_b = held_back.model_copy(
        update={"pubsub": held_back.pubsub.model_copy(update={"subscription": b.subscription})}
    )
    shared, only_a, only_b = (f"{who}-{a.environment}" for who in ("both", "a", "b"))
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, a.selector) as history,
    ):
        first = start_service(
            held_back, pubsub_clients, k8s_cluster.kubeconfig, f"{a.environment}-a"
        )
        second = start_service(
            settings_b, pubsub_clients, k8s_cluster.kubeconfig, f"{a.environment}-b"
        )
        try:
            publish(pubsub_clients, a.topic, order(shared), order(only_a))
            publish(pubsub_clients, b.topic, order(shared), order(only_b))
            poll(lambda: held(first[0]) == 2 and held(second[0]) == 2, 30, "both hold two")
            # Replica a may create: its Workflow holds the shared order.
            first[0].apply(with_caps(held_back, small=4))
            history.wait_for_orders({shared, only_a}, timeout=60)
            poll(lambda: second[1].view.contains(shared), 30, "replica b to see it")
            # Replica b still holds its copy; the check before its create must drop it.
            second[0].apply(with_caps(settings_b, small=4))
            history.wait_for_orders({only_b}, timeout=60)
            poll(lambda: second[0].runner.engine.idle(), 30, "replica b to settle")
        finally:
            for service, backend in (first, second):
                service.stop(grace=20)
                backend.close()
    counts = history.order_ids()
    assert dict(counts) == {shared: 1, only_a: 1, only_b: 1}, counts
    assert nothing_left(pubsub_clients, b.subscription) == [], "b did not ack its copy"


@pytest.mark.cluster
@pytest.mark.pubsub
def test_two_replicas_released_at_the_same_moment_create_each_shared_order_once(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
) -> None:
    """The race the check before each create cannot close: both replicas hold copies of
    the same orders behind a cap, and the cap opens for both at once. The claims decide."""
    a, b = make_space(), make_space()
    b.environment = a.environment
    cleanup.append(a.selector)
    held_back = with_caps(
        settings_for(a.env(), k8s_cluster.namespace, pubsub_clients.project), small=0
    )
    settings_b = held_back.model_copy(
        update={"pubsub": held_back.pubsub.model_copy(update={"subscription": b.subscription})}
    )
    shared = [f"both-{i}-{a.environment}" for i in range(12)]
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, a.selector) as history,
    ):
        replicas = [
            start_service(held_back, pubsub_clients, k8s_cluster.kubeconfig, f"{a.environment}-a"),
            start_service(settings_b, pubsub_clients, k8s_cluster.kubeconfig, f"{a.environment}-b"),
        ]
        try:
            publish(pubsub_clients, a.topic, *(order(o) for o in shared))
            publish(pubsub_clients, b.topic, *(order(o) for o in shared))
            poll(lambda: all(held(r[0]) == len(shared) for r in replicas), 30, "both hold all")
            gate = threading.Barrier(2)

            def open_cap(service: Service, settings: Settings) -> None:
                gate.wait(timeout=10)
                service.apply(with_caps(settings, small=8))

            openers = [
                threading.Thread(target=open_cap, args=(r[0], s))
                for r, s in zip(replicas, (held_back, settings_b), strict=True)
            ]
            for opener in openers:
                opener.start()
            for opener in openers:
                opener.join(timeout=20)
            history.wait_for_orders(set(shared), timeout=90)
            poll(lambda: all(r[0].runner.engine.idle() for r in replicas), 60, "both settle")
        finally:
            for service, backend in replicas:
                service.stop(grace=20)
                backend.close()
    counts = history.order_ids()
    assert dict(counts) == dict.fromkeys(shared, 1), counts
    for space in (a, b):
        assert nothing_left(pubsub_clients, space.subscription) == [], space.subscription


# -- (4) a poison message ---------------------------------------------------------------------
@pytest.mark.pubsub
def test_a_poison_message_does_not_stop_the_engine(
    make_space: Callable[..., Space], pubsub_clients: Any
) -> None:
    space = make_space(max_delivery_attempts=5)
    assert space.policy_dlq_subscription is not None
    settings = settings_for(space.env(), "burst-dispatcher", pubsub_clients.project)
    sink = MemorySink()
    service = local_service(settings, pubsub_clients, sink)
    service.start()
    ids = {f"ok-{space.environment}-{i}" for i in range(10)}
    poison = b"x" * NEAR_LIMIT
    try:
        publish(pubsub_clients, space.topic, poison)
        publish(pubsub_clients, space.topic, *(order(i) for i in sorted(ids)))

        def dispatched_and_healthy() -> bool:
            assert service.healthy() == (True, "ok")
            return set(orders_in(sink)) >= ids

        poll(dispatched_and_healthy, 60, "the healthy orders after the poison")
        # Too large even to dead-letter: left to Pub/Sub's policy, which stores it whole.
        [stored] = pull(pubsub_clients, space.policy_dlq_subscription, expected=1, timeout=60)
        assert stored.message.data == poison
        assert service.healthy() == (True, "ok")
    finally:
        assert service.stop(grace=20)
    assert sorted(orders_in(sink)) == sorted(ids)


# -- (6) 409, 404 and 422 through the real API -------------------------------------------------
@pytest.mark.cluster
@pytest.mark.pubsub
def test_create_conflict_missing_template_and_refused_object(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
) -> None:
    space, other = make_space(), make_space()
    cleanup.append(space.selector)
    namespace = k8s_cluster.namespace
    settings = with_template(
        settings_for(space.env(), namespace, pubsub_clients.project),
        "large",
        f"missing-{space.environment}",
    )
    exists, missing, refused = (f"{w}-{space.environment}" for w in ("exists", "tmpl", "bad"))
    api = api_client(k8s_cluster.kubeconfig, pool_size=4)
    # 409: a Workflow of the very name the dispatcher will choose is already there.
    name = workflow_name(settings.workflow_name_prefix, "small", (exists,))
    labels = {"burst-dispatcher.io/environment": space.environment}
    KubeWorkflowSink(api, namespace=namespace).create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"workflowTemplateRef": {"name": TEMPLATE}},
        }
    )
    service = local_service(settings, pubsub_clients, KubeWorkflowSink(api, namespace=namespace))
    # 422: a replica label over 63 characters, refused by the API server's own validation.
    other_settings = settings.model_copy(
        update={"pubsub": settings.pubsub.model_copy(update={"subscription": other.subscription})}
    )
    refusing = local_service(
        other_settings,
        pubsub_clients,
        KubeWorkflowSink(api, namespace=namespace),
        replica="r" * 64,
    )
    service.start()
    refusing.start()
    try:
        publish(pubsub_clients, space.topic, order(exists), order(missing, size=10**12))
        publish(pubsub_clients, other.topic, order(refused))
        dead = pull(pubsub_clients, space.dlq_subscription, expected=2, timeout=45)
        poll(lambda: service.runner.engine.idle(), 30, "the conflict to be settled")
    finally:
        assert service.stop(grace=20)
        assert refusing.stop(grace=20)
    reasons = {
        json.loads(r.message.data)["order_id"]: (
            r.message.attributes["dlq_reason"],
            r.message.attributes["dlq_stage"],
        )
        for r in dead
    }
    assert reasons == {
        missing: ("template_missing", "create"),
        refused: ("rejected_by_api", "create"),
    }, reasons
    detail = next(r.message.attributes["dlq_detail"] for r in dead if b"bad-" in r.message.data)
    assert "422" in detail, detail
    # The Workflow that was there is the only one, untouched: the 409 meant "done".
    found = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows", label_selector=space.selector
    )["items"]
    assert [w["metadata"]["name"] for w in found] == [name]
    assert "burst-dispatcher.io/order-ids" not in (found[0]["metadata"].get("annotations") or {})
    for subscription in (space.subscription, other.subscription):
        assert nothing_left(pubsub_clients, subscription) == [], "an order was left unacked"


# -- (7) 410 Gone on the Workflow watch ----------------------------------------------------------
@pytest.mark.cluster
@pytest.mark.pubsub
def test_an_expired_workflow_watch_relists_and_still_sees_other_workflows(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
    tmp_path: Path,
) -> None:
    space = make_space()
    cleanup.append(space.selector)
    namespace = k8s_cluster.namespace
    settings = settings_for(space.env(), namespace, pubsub_clients.project)
    done_elsewhere, fresh = (f"{w}-{space.environment}" for w in ("elsewhere", "fresh"))
    faults = Faults(gone_watches=4)  # 410 on the next four watch requests (view and ledger)
    with (
        KubeFaultProxy(k8s_cluster.kubeconfig, faults) as proxy,
        k8s_cluster.api_client() as api,
        History(api, namespace, space.selector) as history,
    ):
        kubeconfig = str(proxy.kubeconfig(tmp_path / "proxy.kubeconfig"))
        service, backend = start_service(settings, pubsub_clients, kubeconfig, space.environment)
        try:
            # Another replica's Workflow, made while the watches are being expired: only a
            # relist (or the watch that follows it) can tell this replica about it.
            create_workflow(
                api,
                namespace,
                name=f"elsewhere-{space.environment}",
                environment=space.environment,
                order_ids=[done_elsewhere],
                replica="gone",
            )
            poll(lambda: faults.injected["410"] >= 4, 60, "four expired watches")
            poll(lambda: backend.view.contains(done_elsewhere), 60, "the view to see it")
            publish(pubsub_clients, space.topic, order(done_elsewhere), order(fresh))
            history.wait_for_orders({done_elsewhere, fresh}, timeout=60)
            poll(lambda: service.runner.engine.idle(), 30, "both orders settled")
            assert service.healthy() == (True, "ok")
            assert backend.view.synced()
        finally:
            service.stop(grace=20)
            backend.close()
    counts = history.order_ids()
    assert dict(counts) == {done_elsewhere: 1, fresh: 1}, counts
    assert nothing_left(pubsub_clients, space.subscription) == []


HOLDING_TEMPLATE = "bd-test-hold-5s"


def ensure_holding_template(api: Any, namespace: str) -> None:
    """A template whose Workflows stay live (Running, no pod) for 5 s: long enough for the
    old replica to leave live Workflows behind when it goes."""
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": HOLDING_TEMPLATE, "namespace": namespace},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": p, "value": ""} for p in WORKFLOW_PARAMETERS]},
            "templates": [{"name": "main", "suspend": {"duration": "5s"}}],
        },
    }
    try:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "workflowtemplates", body
        )
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise


# -- (5) a rolling restart, caps judged from the API server's history ---------------------------
@pytest.mark.cluster
@pytest.mark.pubsub
def test_a_rolling_restart_keeps_class_caps_counting_the_old_replicas_workflows(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
) -> None:
    space = make_space()
    cleanup.append(space.selector)
    cap = 2
    base = settings_for(space.env(), k8s_cluster.namespace, pubsub_clients.project)
    settings = base.model_copy(
        update={
            "classes": [
                c.model_copy(update={"max_orders_per_workflow": 3, "max_live_workflows": cap})
                for c in base.classes
            ]
        }
    )
    with k8s_cluster.api_client() as api:
        ensure_holding_template(api, k8s_cluster.namespace)
    settings = with_template(settings, "small", HOLDING_TEMPLATE)
    ids = [f"roll-{space.environment}-{i:03d}" for i in range(30)]  # 10 small Workflows
    old_name, new_name = f"{space.environment}-old", f"{space.environment}-new"
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, space.selector) as history,
    ):
        old = start_service(settings, pubsub_clients, k8s_cluster.kubeconfig, old_name)
        new: tuple[Service, Any] | None = None
        try:
            publish(pubsub_clients, space.topic, *(order(i) for i in ids))
            poll(lambda: len(history.bodies) >= cap, 60, "the old replica's first Workflows")
            assert not any(p in DONE for p in history.phases.values()), "not held long enough"
            # Surge: the new pod joins while the old one still holds orders, then the old
            # one drains (its held orders re-parked) and leaves its live Workflows behind.
            new = start_service(settings, pubsub_clients, k8s_cluster.kubeconfig, new_name)
            poll(lambda: new is not None and new[1].membership.settled(), 60, "the new replica")
            old[0].stop(grace=20)
            old[1].close()
            orphans = [
                name
                for name, phase in list(history.phases.items())
                if phase not in DONE | {"Deleted"}
                and history.bodies[name]["metadata"]["labels"].get(LABEL_REPLICA) == old_name
            ]
            assert orphans, "the old replica left no live Workflow: no orphan was counted"
            history.wait_for_orders(set(ids), timeout=120)
        finally:
            for service, backend in [old, *([new] if new is not None else [])]:
                service.stop(grace=20)
                backend.close()
    counts = history.order_ids()
    assert dict(counts) == dict.fromkeys(ids, 1), "an order lost or in two Workflows"
    replicas = {
        b["metadata"]["labels"].get("burst-dispatcher.io/replica") for b in history.bodies.values()
    }
    assert replicas == {old_name, new_name}, replicas
    assert history.peak_live["small"] <= cap, dict(history.peak_live)
    assert history.peak_live["small"] == cap, "the cap was never reached: nothing was judged"
    print(
        f"\nrolling restart: {len(history.bodies)} Workflows, peak live {dict(history.peak_live)}"
    )


# -- the object cap, judged from the API server's history ----------------------------------------
@pytest.mark.cluster
@pytest.mark.pubsub
def test_the_object_cap_holds_orders_until_workflows_are_deleted(
    make_space: Callable[..., Space],
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],
) -> None:
    space = make_space()
    cleanup.append(space.selector)
    objects = 3
    base = settings_for(
        space.env(), k8s_cluster.namespace, pubsub_clients.project, max_workflow_objects=objects
    )
    settings = base.model_copy(
        update={
            "classes": [c.model_copy(update={"max_orders_per_workflow": 1}) for c in base.classes]
        }
    )
    ids = [f"obj-{space.environment}-{i}" for i in range(6)]
    with (
        k8s_cluster.api_client() as api,
        History(api, k8s_cluster.namespace, space.selector) as history,
    ):
        service, backend = start_service(
            settings, pubsub_clients, k8s_cluster.kubeconfig, space.environment
        )
        try:
            publish(pubsub_clients, space.topic, *(order(i) for i in ids))
            poll(lambda: len(history.bodies) >= objects, 60, "the first Workflows")
            engine = service.runner.engine
            poll(
                lambda: engine.last_hold["small"] is HoldReason.OBJECT_CAP and held(service) == 3,
                30,
                "the rest held by the object cap",
            )
            assert len(history.bodies) == objects
            # What Argo's TTL does: the finished Workflows go, room comes back.
            delete_workflows(api, k8s_cluster.namespace, space.selector)
            history.wait_for_orders(
                set(ids),
                timeout=60,
                describe=lambda: (
                    f"objects {backend.view.objects_total()}, hold {engine.last_hold}, "
                    f"held {held(service)}, phases {history.phases}, "
                    f"view thread alive {backend.view._thread.is_alive()}, "
                    f"view rv {backend.view._resource_version}, entries {backend.view._entries}"
                ),
            )
            poll(lambda: engine.idle(), 30, "every order settled")
        finally:
            service.stop(grace=20)
            backend.close()
    assert dict(history.order_ids()) == dict.fromkeys(ids, 1)
    assert history.peak_objects <= objects, history.peak_objects
