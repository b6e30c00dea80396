"""Reaching each replica's ``/status`` through the API server, as ``kubectl`` reaches pods.

``dispatcher status`` must work from an operator's laptop with nothing but a kubeconfig: no
port-forward, no open port, no Service. The API server's pod proxy
(``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/status``) does exactly that, under RBAC:
the operator needs ``list`` on pods and ``get`` on ``pods/proxy`` in the dispatcher's
namespace (k8s/base/rbac.yaml), nothing else. A replica that cannot be reached is reported
with the reason, never hidden.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kube import translate

DEPLOYMENT_LABEL = ("app.kubernetes.io/name", "burst-dispatcher")
DEPLOYMENT_SELECTOR = "=".join(DEPLOYMENT_LABEL)
#: The Deployment's container port for /healthz, /metrics and /status (k8s/base/deployment.yaml).
PORT_NAME = "http"
REQUEST_TIMEOUT = (5.0, 10.0)


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    pod: str
    phase: str
    status: dict[str, Any] | None  # the replica's /status document, None if unreachable
    error: str = ""


def replica_reports(
    api: Any, *, namespace: str, port: int, selector: str = DEPLOYMENT_SELECTOR
) -> Iterator[ReplicaReport]:
    """One report per dispatcher pod of the namespace (by the Deployment's pod label).

    Each pod is asked on its container port named ``http`` when it declares one, else ``port``.
    """
    core = k8s.CoreV1Api(api)
    try:
        pods = core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        ).items
    except Exception as exc:
        raise translate(exc) from exc
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        name = pod.metadata.name
        phase = (pod.status.phase if pod.status else None) or "Unknown"
        if phase != "Running" or pod.metadata.deletion_timestamp is not None:
            yield ReplicaReport(name, phase, None, "not running")
            continue
        try:
            # Raw bytes: the client would otherwise parse the JSON and hand back its repr.
            response = core.connect_get_namespaced_pod_proxy_with_path(
                f"{name}:{declared_port(pod) or port}",
                namespace,
                "status",
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
            document = json.loads(response.data)
        except ApiException as exc:
            yield ReplicaReport(name, phase, None, f"HTTP {exc.status}: {exc.reason}")
            continue
        except (ValueError, OSError) as exc:
            yield ReplicaReport(name, phase, None, f"{type(exc).__name__}: {exc}")
            continue
        if not isinstance(document, dict):
            yield ReplicaReport(name, phase, None, "the answer is not a status document")
            continue
        yield ReplicaReport(name, phase, document)


def declared_port(pod: Any) -> int | None:
    """The pod's container port named ``http``, if it declares one."""
    for container in (pod.spec.containers if pod.spec else None) or []:
        for declared in container.ports or []:
            if declared.name == PORT_NAME:
                return int(declared.container_port)
    return None
