"""A Pod object that stands for a dispatcher process running on this host.

Why: `dispatcher status` finds replicas as an operator's kubectl does, by listing the
Deployment's pods and reading each one's ``/status`` through the API server's pod proxy. A
dispatcher that runs here as a plain process (the local stack, the status test) has no pod, so
the command would find nothing. The stand-in is a Running Pod with the Deployment's pod label,
bound to a Node of its own that kwok does not manage, whose IP is this host's and whose port
named ``http`` is the process's ops port: the API server then proxies to the real process.
It tolerates its Node's unreachable taint forever, so the node lifecycle controller never
evicts it while the process runs.
"""

from __future__ import annotations

import socket
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.replica_status import DEPLOYMENT_LABEL, PORT_NAME

NOT_FOUND = 404
CONFLICT = 409
_FOREVER = [
    {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute"}
    for taint in ("unreachable", "not-ready")
]


def host_address() -> str:
    """This host's own IPv4 address (the API server refuses to proxy to loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))
        return str(probe.getsockname()[0])


def register(api: Any, *, namespace: str, name: str, port: int) -> None:
    """Create (or replace) the stand-in Node and Pod ``name`` for a process serving ``port``."""
    core = k8s.CoreV1Api(api)
    remove(api, namespace=namespace, name=name)
    try:
        core.create_node({"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != CONFLICT:
            raise
    pod = {
        "metadata": {"name": name, "labels": dict([DEPLOYMENT_LABEL])},
        "spec": {
            "nodeName": name,
            "tolerations": _FOREVER,
            "containers": [
                {
                    "name": "dispatcher",
                    "image": "dispatcher",
                    "ports": [{"name": PORT_NAME, "containerPort": port}],
                }
            ],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    address = host_address()
    core.patch_namespaced_pod_status(
        name,
        namespace,
        {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]}},
    )


def remove(api: Any, *, namespace: str, name: str) -> None:
    """Delete the stand-in Pod and its Node; a missing one is fine."""
    core = k8s.CoreV1Api(api)
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != NOT_FOUND:
            raise
    try:
        core.delete_node(name)
    except ApiException as exc:
        if exc.status != NOT_FOUND:
            raise
