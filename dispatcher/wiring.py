"""Connecting the service to a real cluster: API client, sink, Workflow view, membership.

Shared by ``dispatcher run`` and the integration tests, so the tests exercise the same
wiring the service runs with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.adapters.cluster_view import WorkflowView
from dispatcher.adapters.kube import KubeWorkflowSink
from dispatcher.adapters.kubeclient import api_client
from dispatcher.adapters.ledger_memory import MemoryLedger
from dispatcher.adapters.membership import Membership
from dispatcher.config import Settings
from dispatcher.core.ports import OrderLedger


@dataclass
class ClusterBackend:
    sink: KubeWorkflowSink
    view: WorkflowView
    membership: Membership
    ledger: OrderLedger
    identity: str
    #: readiness checks keyed by the stable reason code /readyz reports when one fails
    checks: dict[str, Callable[[], tuple[bool, str]]] = field(default_factory=dict)

    def close(self) -> None:
        self.view.stop()
        self.membership.stop()


def connect_cluster(settings: Settings, *, kubeconfig: str | None, identity: str) -> ClusterBackend:
    """Start the membership lease and the Workflow watch; return once the watch has synced."""
    api = api_client(kubeconfig, pool_size=settings.service.create_workers + 4)
    membership = Membership(api, namespace=settings.namespace, identity=identity)
    membership.start()
    ledger = MemoryLedger()
    view = WorkflowView(
        api,
        namespace=settings.namespace,
        environment=settings.environment,
        identity=identity,
        ledger=ledger,
    )
    view.start()
    sink = KubeWorkflowSink(api, namespace=settings.namespace)
    backend = ClusterBackend(sink, view, membership, ledger, identity)
    backend.checks = {
        "kubernetes_unavailable": sink.ping,
        "workflow_watch_not_synced": lambda: (view.synced(), "workflow watch synced"),
    }
    return backend
