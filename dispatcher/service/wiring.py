"""Connecting the service to a real cluster: API client, sink, Workflow view, membership.

Shared by ``dispatcher run`` and the integration tests, so the tests exercise the same
wiring the service runs with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.adapters.claims import KubeClaims
from dispatcher.adapters.cluster_view import WorkflowView
from dispatcher.adapters.kube import KubeWorkflowSink
from dispatcher.adapters.kubeclient import api_client
from dispatcher.adapters.ledger import KubeLedger
from dispatcher.adapters.membership import Membership
from dispatcher.config import Settings


@dataclass
class ClusterBackend:
    sink: KubeWorkflowSink
    view: WorkflowView
    membership: Membership
    ledger: KubeLedger
    identity: str
    claims: KubeClaims | None = None
    #: readiness checks keyed by the stable reason code /readyz reports when one fails
    checks: dict[str, Callable[[], tuple[bool, str]]] = field(default_factory=dict)

    def close(self) -> None:
        self.view.stop()
        self.ledger.stop()  # writes what is still buffered
        if self.claims is not None:
            self.claims.close()
        self.membership.stop()


def connect_cluster(settings: Settings, *, kubeconfig: str | None, identity: str) -> ClusterBackend:
    """Join the replicas, load the dedupe ledger and list the Workflows; return when synced."""
    api = api_client(kubeconfig, pool_size=settings.service.create_workers + 4)
    membership = Membership(
        api,
        namespace=settings.namespace,
        environment=settings.environment,
        identity=identity,
        lease_seconds=settings.service.lease_seconds,
    )
    membership.start()
    ledger = KubeLedger(
        api,
        namespace=settings.namespace,
        environment=settings.environment,
        identity=identity,
        window_seconds=settings.dedupe.window_seconds,
    )
    ledger.start()
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
    if settings.dedupe.claims:
        backend.claims = KubeClaims(
            api,
            namespace=settings.namespace,
            environment=settings.environment,
            identity=identity,
            hold_seconds=settings.dedupe.claim_hold_seconds,
        )
    backend.checks = {
        "kubernetes_unavailable": sink.ping,
        "workflow_watch_not_synced": lambda: (view.synced(), "workflow watch synced"),
        "ledger_not_synced": lambda: (ledger.synced(), "dedupe ledger synced"),
    }
    return backend
