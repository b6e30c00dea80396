"""Karpenter NodePools and kwok instance types derived from the shipped GKE node pools.

Why: with `--autoscaling` the test cluster has no fixed pool nodes; Karpenter's kwok cloud
provider creates them on demand. Its NodePools must be the GKE pools of `k8s/infra` and nothing
hand-copied, so a change of machine type, spot, taint or maximum there changes the test cluster
too. Mapping (docs/test-cluster.md, "Autoscaling"):

- one NodePool per Config Connector `ContainerNodePool` that scales from zero
  (`totalMinNodeCount` 0); a pool with a minimum (`system`) hosts the dispatcher and Argo, which
  run as local processes here, and Karpenter has no minimum size;
- node labels: `cloud.google.com/gke-nodepool` = the pool's name (what the WorkflowTemplates
  select on), the pool's `nodeConfig.labels`, and `cloud.google.com/gke-spot=true` on spot pools;
- spot vs on-demand: Karpenter's `karpenter.sh/capacity-type` requirement (spot / on-demand);
- taints: `nodeConfig.taint`, effects translated (NO_SCHEDULE -> NoSchedule);
- machine shape: an instance type per machine type, named as GCE names it, whose allocatable is
  GKE's (nodes.py's reservation formula), so a pod that fits here fits on GKE;
- `totalMaxNodeCount` -> NodePool `limits.nodes`;
- GKE's `OPTIMIZE_UTILIZATION` -> `consolidationPolicy: WhenEmptyOrUnderutilized` and a short
  `consolidateAfter` (CONSOLIDATE_AFTER); empty nodes may all go at once, an underused one
  is drained one at a time (BUDGETS).

Pure: plain dicts in, plain dicts out.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

from dispatcher.local import nodes

NODE_CLASS = "default"
NODE_CLASS_GROUP = "karpenter.kwok.sh"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
# GKE's OPTIMIZE_UTILIZATION removes an unneeded node after about a minute; the test cluster
# uses a shorter delay so a swarm's pools are back at zero soon (BURST_CLUSTER_CONSOLIDATE_AFTER).
CONSOLIDATE_AFTER = "15s"
# GKE's autoscaler deletes empty nodes in bulk and drains non-empty ones one at a time. Karpenter
# honours the MOST restrictive budget that applies, and a budget without `reasons` applies to
# every reason: an unqualified "10%" beside "100% Empty" let one of a pool's 7 empty nodes go per
# disruption loop (~20 s each; back to zero took 269 s in bench/runs/ref-1000). So each budget
# names its reasons.
BUDGETS = [
    {"nodes": "100%", "reasons": ["Empty"]},
    {"nodes": "1", "reasons": ["Underutilized", "Drifted"]},
]
# Karpenter adds this much kube-reserved to every kwok instance type; added back so the Node's
# allocatable is GKE's.
KWOK_OVERHEAD_CPU_MILLIS = 100
KWOK_OVERHEAD_MEMORY_KI = 10 * 1024
# Offering prices only order Karpenter's choice inside one pool (one machine type each); the
# swarm's cost uses the repository's dated price table, not these.
PRICE = {"on-demand": 1.0, "spot": 0.3}
# GiB per vCPU of the GCE machine families the pools use.
GIB_PER_CPU = {"standard": 4, "highmem": 8, "highcpu": 1}
EFFECTS = {
    "NO_SCHEDULE": "NoSchedule",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
    "NO_EXECUTE": "NoExecute",
}


def machine_type(name: str) -> nodes.MachineType:
    """A GCE machine type's shape from its name (`e2-standard-4` = 4 vCPU, 16 GiB)."""
    match = re.fullmatch(r"[a-z0-9]+-(standard|highmem|highcpu)-(\d+)", name)
    if match is None:
        raise ValueError(f"unknown machine type {name!r}")
    cpus = int(match.group(2))
    return nodes.MachineType(name, cpus, cpus * GIB_PER_CPU[match.group(1)])


def pool_machine(pool: dict[str, Any]) -> nodes.MachineType:
    return machine_type(str((pool["spec"].get("nodeConfig") or {}).get("machineType", "")))


def pool_spot(pool: dict[str, Any]) -> bool:
    config = pool["spec"].get("nodeConfig") or {}
    return bool(config.get("spot") or config.get("preemptible"))


def pool_taints(pool: dict[str, Any]) -> list[dict[str, str]]:
    config = pool["spec"].get("nodeConfig") or {}
    return [
        {"key": t["key"], "value": str(t["value"]), "effect": EFFECTS[t["effect"]]}
        for t in config.get("taint", [])
    ]


def scaled_pools(infra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ContainerNodePools that scale from zero (the batch pools)."""
    return [
        doc
        for doc in infra
        if doc.get("kind") == "ContainerNodePool"
        and int((doc["spec"].get("autoscaling") or {}).get("totalMinNodeCount", 0)) == 0
    ]


def instance_types(infra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Karpenter kwok's instance-types file: one entry per machine type of the scaled pools."""
    shapes = {m.name: m for m in (pool_machine(p) for p in scaled_pools(infra))}
    return [
        {
            "name": shape.name,
            "offerings": [
                {
                    "Price": PRICE[capacity] * shape.cpus,
                    "Available": True,
                    "Requirements": [
                        {"key": CAPACITY_TYPE, "operator": "In", "values": [capacity]},
                        {
                            "key": "topology.kubernetes.io/zone",
                            "operator": "In",
                            "values": [nodes.ZONE],
                        },
                    ],
                }
                for capacity in ("spot", "on-demand")
            ],
            "architecture": "amd64",
            "operatingSystems": ["linux"],
            "resources": {
                "cpu": f"{nodes.allocatable_cpu_millis(shape.cpus) + KWOK_OVERHEAD_CPU_MILLIS}m",
                "memory": f"{_memory_ki(shape)}Ki",
                "pods": "110",
                "ephemeral-storage": "100Gi",
            },
        }
        for shape in sorted(shapes.values(), key=lambda m: m.name)
    ]


def pool_limits(shape: nodes.MachineType, maximum: int) -> dict[str, str]:
    """NodePool limits for at most ``maximum`` nodes of ``shape``.

    Karpenter checks ``nodes`` only between scheduling passes: one pass for many pending pods
    launches as many NodeClaims as it can pack (kubernetes-sigs/karpenter#2915; measured here:
    10 medium-spot nodes against a limit of 3). It does subtract each new NodeClaim's capacity
    from a ``cpu`` limit within the pass, and a pool has one machine shape, so a cpu limit of
    ``maximum`` nodes' capacity holds the count exactly.
    """
    cpu_millis = nodes.allocatable_cpu_millis(shape.cpus) + KWOK_OVERHEAD_CPU_MILLIS
    return {"nodes": str(maximum), "cpu": f"{cpu_millis * maximum}m"}


def _memory_ki(shape: nodes.MachineType) -> int:
    return nodes.allocatable_memory_ki(shape.memory_gib) + KWOK_OVERHEAD_MEMORY_KI


def consolidate_after() -> str:
    return os.environ.get("BURST_CLUSTER_CONSOLIDATE_AFTER", CONSOLIDATE_AFTER)


def node_pool(pool: dict[str, Any]) -> dict[str, Any]:
    """The Karpenter NodePool standing in for one GKE node pool."""
    name = pool["metadata"]["name"]
    spot = pool_spot(pool)
    config = pool["spec"].get("nodeConfig") or {}
    labels = {**(config.get("labels") or {}), nodes.POOL_LABEL: name}
    if spot:
        labels[nodes.SPOT_LABEL] = "true"
    maximum = (pool["spec"].get("autoscaling") or {}).get("totalMaxNodeCount")
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeClassRef": {
                        "group": NODE_CLASS_GROUP,
                        "kind": "KWOKNodeClass",
                        "name": NODE_CLASS,
                    },
                    "requirements": [
                        {
                            "key": INSTANCE_TYPE,
                            "operator": "In",
                            "values": [pool_machine(pool).name],
                        },
                        {
                            "key": CAPACITY_TYPE,
                            "operator": "In",
                            "values": ["spot" if spot else "on-demand"],
                        },
                    ],
                    "taints": pool_taints(pool),
                    "expireAfter": "Never",
                },
            },
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": consolidate_after(),
                "budgets": BUDGETS,
            },
            "limits": {} if maximum is None else pool_limits(pool_machine(pool), maximum),
        },
    }


def node_class() -> dict[str, Any]:
    return {
        "apiVersion": f"{NODE_CLASS_GROUP}/v1alpha1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": NODE_CLASS},
        "spec": {},
    }


def node_pools(infra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [node_pool(p) for p in scaled_pools(infra)]


def instance_types_json(infra: list[dict[str, Any]]) -> str:
    return json.dumps(instance_types(infra), indent=2)


SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


def honour_safe_to_evict(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the rendered objects where every WorkflowTemplate template that tells GKE's
    autoscaler `safe-to-evict: "false"` also tells Karpenter (which ignores that annotation)
    `karpenter.sh/do-not-disrupt: "true"`: the same promise to the stand-in autoscaler."""
    out = copy.deepcopy(docs)
    for doc in out:
        if doc.get("kind") != "WorkflowTemplate":
            continue
        for template in doc["spec"].get("templates", []):
            annotations = (template.get("metadata") or {}).get("annotations") or {}
            if str(annotations.get(SAFE_TO_EVICT, "")).lower() == "false":
                annotations[DO_NOT_DISRUPT] = "true"
    return out
