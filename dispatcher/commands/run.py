"""``dispatcher run``: the long-running service, wired to real Pub/Sub and Kubernetes."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.logging import get_logger

log = get_logger()


@click.command("run")
@config_option
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    default=None,
    help="Kubeconfig file (default: in-cluster credentials, else ~/.kube/config).",
)
@click.option(
    "--sink-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write Workflow manifests here instead of creating them (no cluster needed).",
)
@click.option(
    "--identity",
    envvar="POD_NAME",
    default=None,
    help="This replica's name (default: $POD_NAME, else the host name).",
)
@click.option(
    "--ensure-topology",
    is_flag=True,
    help="Create the subscription's topic, the subscription and the dead-letter topic if "
    "missing (local emulators and dev projects).",
)
@click.option(
    "--topic",
    default="orders",
    show_default=True,
    help="Orders topic, only used with --ensure-topology.",
)
@click.option("--http-port", type=int, default=None, help="Override service.http_port.")
def run_command(
    config_path: Path | None,
    kubeconfig: str | None,
    sink_dir: Path | None,
    identity: str | None,
    ensure_topology: bool,
    topic: str,
    http_port: int | None,
) -> None:
    """Pull orders from Pub/Sub and create batched Workflows until SIGTERM.

    Acks an order only once its Workflow exists (or Argo already has it), dead-letters what it
    cannot process with a reason, and holds the rest while limits say so. The mounted
    configuration file is re-read every `service.reload_seconds`; new limits apply live.
    SIGTERM drains within `service.drain_seconds`: partial batches are sent or re-parked (a
    fresh copy published, the delivery acked: no attempt spent), creates in flight finish.
    """

    from dispatcher.adapters.cluster_memory import LocalClusterState, StaticMembers
    from dispatcher.adapters.http import Check, OpsServer, Readiness
    from dispatcher.adapters.ledger_memory import MemoryLedger
    from dispatcher.adapters.pubsub import ensure_subscription, ensure_topic
    from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
    from dispatcher.adapters.sinks import DirectorySink, WorkflowSink
    from dispatcher.core.ports import Claims, ClusterState, Members, OrderLedger
    from dispatcher.service.assembly import Service, settle_heap
    from dispatcher.service.status import StatusBoard

    settings = settings_or_exit(config_path)
    me = identity or socket.gethostname()
    subscriber = subscriber_client()
    publisher = publisher_client()
    ps = settings.pubsub
    if ensure_topology:
        topic_path = (
            topic if topic.startswith("projects/") else publisher.topic_path(ps.project, topic)
        )
        ensure_topic(publisher, topic_path)
        ensure_topic(publisher, ps.dead_letter_topic_path())
        ensure_subscription(subscriber, ps.subscription_path(), topic_path)
        if ps.routing == "class_topics":
            for size_class in settings.classes:
                class_topic = ps.class_topic_path(size_class.name)
                ensure_topic(publisher, class_topic)
                ensure_subscription(
                    subscriber, ps.class_subscription_path(size_class.name), class_topic
                )

    sink: WorkflowSink
    cluster: ClusterState
    members: Members
    ledger: OrderLedger
    claims: Claims | None = None
    checks: dict[str, Check] = {}
    closers: list[Any] = []
    if sink_dir is not None:
        sink, cluster, replica = DirectorySink(sink_dir), LocalClusterState(), ""
        members, ledger = StaticMembers(), MemoryLedger()
    else:
        from dispatcher.service.wiring import connect_cluster

        backend = connect_cluster(settings, kubeconfig=kubeconfig, identity=me)
        sink, cluster, replica = backend.sink, backend.view, me
        members, ledger, claims = backend.membership, backend.ledger, backend.claims
        checks.update(backend.checks)
        closers.append(backend.close)

    service = Service(
        settings,
        subscriber=subscriber,
        publisher=publisher,
        sink=sink,
        cluster=cluster,
        members=members,
        ledger=ledger,
        claims=claims,
        config_path=config_path,
        replica=replica,
    )
    ready = Readiness({"pubsub_unavailable": _PubSubProbe(subscriber, ps.subscription_path())})
    ready.add(checks)
    service.metrics.ready.set_function(lambda: 1.0 if ready()[0] else 0.0)

    board = StatusBoard(replica=replica or me, environment=settings.environment)
    service.metrics.board = board
    ops = OpsServer(
        port=settings.service.http_port if http_port is None else http_port,
        registry=service.metrics.registry,
        healthy=service.healthy,
        ready=ready,
        extra={"/status": board.body},
    )
    ops.start()
    settle_heap()
    service.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("ops_listening", port=ops.port, identity=me, pid=os.getpid())
    stop.wait()
    drained = service.stop()
    for close in closers:
        close()
    ops.stop()
    raise SystemExit(0 if drained else 1)


class _PubSubProbe:
    """Readiness of Pub/Sub: the subscription can be read (cached for a few seconds)."""

    def __init__(self, subscriber: Any, subscription: str, ttl: float = 10.0) -> None:
        self._subscriber = subscriber
        self._subscription = subscription
        self._ttl = ttl
        self._checked = -1e9
        self._last: tuple[bool, str] = (False, "pubsub not checked yet")

    def __call__(self) -> tuple[bool, str]:
        now = time.monotonic()
        if now - self._checked >= self._ttl:
            try:
                self._subscriber.get_subscription(subscription=self._subscription, timeout=5)
                self._last = (True, "pubsub ok")
            except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
                self._last = (False, f"pubsub: {type(exc).__name__}: {exc}"[:300])
            self._checked = now
        return self._last
