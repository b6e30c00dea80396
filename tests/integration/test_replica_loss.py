"""Shared limits when a replica dies, and the creation rate, judged by the API server.

A replica killed with SIGKILL releases nothing: its Lease stays until it expires, its held
orders come back from Pub/Sub only after their ack deadline, its live Workflows stay. The
survivor must keep to its share while the dead Lease lasts, and take the whole cap after it.
Both that and the creation rate are read from the API server's own watch history (event
times of this test's watch, and ``creationTimestamp``), never from the dispatcher's counters.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.config import Settings
from dispatcher.core.render import LABEL_CLASS, LABEL_REPLICA
from dispatcher.local.process import DispatcherProcess
from tests.integration.cluster_support import DONE, History, delete_workflows
from tests.integration.test_dispatch_cluster import settings_for, start_service
from tests.integration.test_loop_cluster import (
    HOLDING_TEMPLATE,
    Space,
    ensure_holding_template,
    held,
    order,
    poll,
    publish,
    with_template,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.pubsub,
    pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True),
]


class TimedHistory(History):
    """History, plus when (this watch's clock) each event came and who held what then."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.timeline: list[tuple[float, Counter[str]]] = []  # (time, live by replica)

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        super()._record(kind, obj)
        replicas = {
            name: body["metadata"]["labels"].get(LABEL_REPLICA, "")
            for name, body in self.bodies.items()
        }
        live = Counter(
            replicas[name] for name, phase in self.phases.items() if phase not in DONE | {"Deleted"}
        )
        self.timeline.append((time.monotonic(), live))

    def peak(self, start: float, end: float, replica: str | None = None) -> int:
        """Most live Workflows (of ``replica``, or of all) between two moments."""
        counts = [
            live[replica] if replica is not None else sum(live.values())
            for at, live in self.timeline
            if start <= at < end
        ]
        return max(counts, default=0)


@pytest.fixture
def space(make_topic_subscription: Any, k8s_cluster: Any) -> Iterator[Space]:
    environment = f"t{uuid.uuid4().hex[:10]}"
    orders = make_topic_subscription(prefix=f"{environment}-o")
    dlq = make_topic_subscription(prefix=f"{environment}-d")
    with k8s_cluster.api_client() as api:
        ensure_holding_template(api, k8s_cluster.namespace)
    yield Space(environment, orders.topic, orders.subscription, dlq.topic, dlq.subscription, None)
    with k8s_cluster.api_client() as api:
        delete_workflows(
            api, k8s_cluster.namespace, f"burst-dispatcher.io/environment={environment}"
        )


def shaped(settings: Settings, *, cap: int, lease_seconds: int) -> Settings:
    """One order per Workflow, ``cap`` live small ones, Workflows that stay live 5 s."""
    classes = [
        c.model_copy(update={"max_orders_per_workflow": 1, "max_live_workflows": cap})
        for c in settings.classes
    ]
    service = settings.service.model_copy(
        update={"lease_seconds": lease_seconds, "http_port": 0, "drain_seconds": 20}
    )
    return with_template(
        settings.model_copy(update={"classes": classes, "service": service}),
        "small",
        HOLDING_TEMPLATE,
    )


def test_a_killed_replicas_share_comes_back_after_its_lease_expires(
    space: Space, k8s_cluster: Any, pubsub_clients: Any, tmp_path: Path
) -> None:
    cap, lease = 4, 3
    settings = shaped(
        settings_for(space.env(), k8s_cluster.namespace, pubsub_clients.project),
        cap=cap,
        lease_seconds=lease,
    )
    # Server-side flow control: neither replica can take the whole backlog, both get work.
    pubsub = settings.pubsub.model_copy(update={"max_messages": 6})
    settings = settings.model_copy(update={"pubsub": pubsub})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    dead, survivor = f"{space.environment}-dead", f"{space.environment}-alive"
    ids = [f"loss-{space.environment}-{i:02d}" for i in range(16)]
    with (
        k8s_cluster.api_client() as api,
        TimedHistory(api, k8s_cluster.namespace, space.selector) as history,
    ):
        doomed = DispatcherProcess(
            ["--config", str(config), "--kubeconfig", k8s_cluster.kubeconfig, "--identity", dead],
            env={},
            log_path=tmp_path / "dead.log",
        )
        service, backend = start_service(settings, pubsub_clients, k8s_cluster.kubeconfig, survivor)
        try:
            members = backend.membership
            poll(lambda: members.members() == sorted([dead, survivor]), 60, "both replicas")
            doomed.wait_for("ops_listening", timeout=60)
            poll(members.settled, 30, "the survivor to settle")
            published = time.monotonic()
            publish(pubsub_clients, space.topic, *(order(i) for i in ids))

            def by(replica: str) -> int:
                labels = [b["metadata"]["labels"] for b in list(history.bodies.values())]
                return sum(1 for lb in labels if lb.get(LABEL_REPLICA) == replica)

            poll(lambda: by(dead) >= 1 and held(service) > 0, 60, "both replicas at work")
            doomed.kill()  # SIGKILL: no drain, no Lease released, no ack or nack
            killed = time.monotonic()
            poll(lambda: members.members() == [survivor], 4 * lease, "the dead Lease to expire")
            alone = time.monotonic()
            history.wait_for_orders(set(ids), timeout=120)
            poll(service.runner.engine.idle, 30, "the survivor to settle its orders")
            done = time.monotonic()
        finally:
            doomed.close()
            service.stop(grace=20)
            backend.close()
    counts = history.order_ids()
    assert set(counts) == set(ids) and max(counts.values()) == 1, counts
    assert history.peak_live["small"] <= cap, dict(history.peak_live)
    # Up to the kill and while the dead Lease lasted, the survivor kept to (and used) its share
    # of two replicas.
    assert history.peak(killed, alone, survivor) <= cap // 2, history.timeline
    assert history.peak(published, alone, survivor) == cap // 2, history.timeline
    # Alone, it took the whole cap (once the dead replica's orphans had finished).
    assert history.peak(alone, done, survivor) == cap, history.timeline
    assert history.peak(0.0, done) <= cap
    print(
        f"\nreplica loss: Lease gone {alone - killed:.1f}s after the kill (lease {lease}s), "
        f"survivor peak {history.peak(alone, done, survivor)}, "
        f"{len(history.bodies)} Workflows"
    )


def created_at(body: dict[str, Any]) -> float:
    stamp = body["metadata"]["creationTimestamp"]
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_two_replicas_together_keep_the_creation_rate(
    space: Space, k8s_cluster: Any, pubsub_clients: Any, make_topic_subscription: Any
) -> None:
    rate, burst, count = 2.0, 3, 20
    base = settings_for(
        space.env(),
        k8s_cluster.namespace,
        pubsub_clients.project,
        workflows_per_second=rate,
        burst=burst,
    )
    settings = shaped(base, cap=100, lease_seconds=3)
    # One deployment, a subscription each: both replicas surely get half of the work.
    other = make_topic_subscription(prefix=f"{space.environment}-p")
    pubsub_b = settings.pubsub.model_copy(update={"subscription": other.subscription})
    per_replica = [settings, settings.model_copy(update={"pubsub": pubsub_b})]
    ids = [f"rate-{space.environment}-{i:02d}" for i in range(count)]
    with (
        k8s_cluster.api_client() as api,
        TimedHistory(api, k8s_cluster.namespace, space.selector) as history,
    ):
        replicas = [
            start_service(own, pubsub_clients, k8s_cluster.kubeconfig, f"{space.environment}-{n}")
            for n, own in zip("ab", per_replica, strict=True)
        ]
        try:
            for _, backend in replicas:
                poll(lambda b=backend: len(b.membership.members()) == 2, 30, "two members")
                poll(backend.membership.settled, 30, "a settled replica")
            half = count // 2
            publish(pubsub_clients, space.topic, *(order(i) for i in ids[:half]))
            publish(pubsub_clients, other.topic, *(order(i) for i in ids[half:]))
            history.wait_for_orders(set(ids), timeout=120)
        finally:
            for service, backend in replicas:
                service.stop(grace=20)
                backend.close()
    bodies = list(history.bodies.values())
    assert len(bodies) == count
    makers = Counter(b["metadata"]["labels"].get(LABEL_REPLICA) for b in bodies)
    assert len(makers) == 2, f"one replica did all the work: the shares were not tested {makers}"
    assert {b["metadata"]["labels"][LABEL_CLASS] for b in bodies} == {"small"}
    # creationTimestamp has whole seconds: Workflows stamped within [s, e] were made within
    # less than e - s + 1 seconds, when at most burst + rate * (e - s + 1) tokens existed.
    stamps = sorted(created_at(b) for b in bodies)
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            made, span = j - i + 1, stamps[j] - start + 1
            assert made <= burst + rate * span, (
                f"{made} Workflows stamped within {span:.0f}s > {burst} + {rate}/s x {span:.0f}s"
            )
    taken = stamps[-1] - stamps[0] + 1
    print(f"\nrate: {count} Workflows by {dict(makers)} within {taken:.0f}s (rate {rate}/s)")
