"""Karpenter's kwok provider as the test cluster's node autoscaler (`up --autoscaling`).

Why: GKE's cluster autoscaler cannot be had here, Karpenter can (servers/autoscaler/build.sh).
It runs like the cluster's other components: a local process against the test API server, its
pid and log in the cluster's state dir, stopped by `down`. It creates a Node (and a NodeClaim)
when a pod fits no existing node but fits a NodePool, and deletes nodes that are empty or whose
pods fit elsewhere after `consolidateAfter`. The kwok process of the cluster then manages those
Nodes like the fixed ones, because Karpenter's kwok provider annotates them
`kwok.x-k8s.io/node: fake`. The NodePools come from the GKE pools (nodepools.py).
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from dispatcher.local import nodepools, overlay, procs
from dispatcher.local.cluster_objects import READY_TIMEOUT
from dispatcher.local.paths import REPO_ROOT, SERVERS_DIR, NotBuiltError

BUILD_SCRIPT = SERVERS_DIR / "autoscaler" / "build.sh"
BINARY = "karpenter-kwok"
NAME = "karpenter"
KARPENTER = ("karpenter.sh", "v1", "nodepools")
NODE_CLASSES = ("karpenter.kwok.sh", "v1alpha1", "kwoknodeclasses")
# Karpenter's new nodes carry `karpenter.sh/unregistered:NoExecute` until it registers them. A
# pod the scheduler binds the moment the taint goes could meet the taint-eviction controller's
# older copy of the node, which then deletes it (seen here on a loaded machine, first try). No
# NoExecute taint needs enforcing on kwok nodes: kube-controller-manager runs without it.
CONTROLLERS_OFF = ",-taint-eviction-controller"
#: The pools `python -m tests.cluster up --autoscaling` mirrors (the local stack uses its
#: environment's rendered infra overlay instead).
BASE_POOLS = REPO_ROOT / "k8s" / "infra" / "base" / "nodepools.yaml"


def bin_dir() -> Path:
    """The built autoscaler's bin dir; never builds (NotBuiltError names the command)."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise NotBuiltError(proc.stderr.strip() or f"{BUILD_SCRIPT} --print: {proc.returncode}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    if not (path / BINARY).is_file():
        raise NotBuiltError(f"missing in {path}: {BINARY}")
    return path


def base_pools() -> list[dict[str, Any]]:
    """The ContainerNodePools of k8s/infra/base (plain YAML, no kustomize needed)."""
    return [d for d in yaml.safe_load_all(BASE_POOLS.read_text()) if d]


def install(api_client: k8s.ApiClient, *, bins: Path, pools: list[dict[str, Any]]) -> int:
    """Karpenter's CRDs, a Ready KWOKNodeClass and one NodePool per scaled GKE pool; returns
    the number of NodePools."""
    ext = k8s.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted((bins.parent / "share" / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                ext.create_custom_resource_definition(doc)
                names.append(doc["metadata"]["name"])

    overlay.wait_established(api_client, names)
    custom = k8s.CustomObjectsApi(api_client)
    group, version, plural = NODE_CLASSES
    custom.create_cluster_custom_object(group, version, plural, nodepools.node_class())
    # Nothing reconciles a KWOKNodeClass; a NodePool is used only once its class says Ready.
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "",
             "lastTransitionTime": now}  # fmt: skip
    custom.patch_cluster_custom_object_status(
        group, version, plural, nodepools.NODE_CLASS, {"status": {"conditions": [ready]}}
    )
    made = nodepools.node_pools(pools)
    group, version, plural = KARPENTER
    for pool in made:
        custom.create_cluster_custom_object(group, version, plural, pool)
    return len(made)


@dataclass(frozen=True)
class Running:
    """A started Karpenter: its process, health port and how many NodePools it serves."""

    proc: procs.Proc
    health: int
    pools: int


def launch(
    api_client: k8s.ApiClient, state: Path, *, kubeconfig: Path, pools: list[dict[str, Any]]
) -> Running:
    """Install Karpenter's objects (install()) and start it against the cluster."""
    bins = bin_dir()
    count = install(api_client, bins=bins, pools=pools)
    types = state / "instance-types.json"
    types.write_text(nodepools.instance_types_json(pools))
    health, metrics = procs.free_ports(2)
    proc = procs.start(
        NAME,
        [str(bins / BINARY), f"--instance-types-file-path={types}"],
        state,
        env={
            "KUBECONFIG": str(kubeconfig),
            "DISABLE_LEADER_ELECTION": "true",
            "HEALTH_PROBE_PORT": str(health),
            "METRICS_PORT": str(metrics),
            "LOG_LEVEL": "info",
        },
    )
    return Running(proc, health, count)


def wait_ready(api_client: k8s.ApiClient, running: Running) -> None:
    """Karpenter's /readyz answers and every NodePool reports Ready."""
    procs.wait_for(
        "karpenter /readyz",
        lambda: procs.http_ok(f"http://127.0.0.1:{running.health}/readyz"),
        READY_TIMEOUT,
        running.proc,
    )
    custom = k8s.CustomObjectsApi(api_client)

    def pools_ready() -> bool:
        listed = custom.list_cluster_custom_object(*KARPENTER)["items"]
        ready = [
            p
            for p in listed
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions", [])
            )
        ]
        return len(listed) == running.pools and len(ready) == running.pools

    procs.wait_for("NodePools Ready", pools_ready, READY_TIMEOUT, running.proc)
