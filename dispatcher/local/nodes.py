"""kwok Node objects shaped like the production GKE node pools.

Why: scheduling behaviour the dispatcher relies on (spot taints needing tolerations, nodepool
selectors, requests fitting real allocatable sizes) only shows up if the fake nodes carry the same
labels, taints and allocatable resources GKE gives them. Allocatable follows GKE's documented
reservation formula, so a pod that fits here fits there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB_KI = 1024 * 1024
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
ZONE = "us-central1-a"


@dataclass(frozen=True)
class MachineType:
    name: str
    cpus: int
    memory_gib: int


@dataclass(frozen=True)
class Pool:
    name: str
    machine: MachineType
    spot: bool
    nodes: int = 2


E2_STANDARD_4 = MachineType("e2-standard-4", 4, 16)
N2_STANDARD_8 = MachineType("n2-standard-8", 8, 32)
N2_HIGHMEM_16 = MachineType("n2-highmem-16", 16, 128)

POOLS = (
    Pool("small-spot", E2_STANDARD_4, spot=True),
    Pool("medium-spot", N2_STANDARD_8, spot=True),
    Pool("large", N2_HIGHMEM_16, spot=False),
    Pool("ondemand", E2_STANDARD_4, spot=False),
)

SPOT_LABEL = "cloud.google.com/gke-spot"
POOL_LABEL = "cloud.google.com/gke-nodepool"


def allocatable_cpu_millis(cpus: int) -> int:
    """GKE CPU reservation: 6% of core 1, 1% of core 2, 0.5% of cores 3-4, 0.25% above."""
    reserved = 60.0
    if cpus >= 2:
        reserved += 10
    reserved += 5 * min(max(cpus - 2, 0), 2)
    reserved += 2.5 * max(cpus - 4, 0)
    return cpus * 1000 - round(reserved)


def allocatable_memory_ki(memory_gib: int) -> int:
    """GKE memory reservation (25% of first 4 GiB, 20% next 4, 10% next 8, 6% next 112,
    2% above) plus the 100 MiB hard eviction threshold."""
    tiers = ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06))
    remaining = float(memory_gib)
    reserved_gib = 0.0
    for size, rate in tiers:
        part = min(remaining, size)
        reserved_gib += part * rate
        remaining -= part
    reserved_gib += max(remaining, 0.0) * 0.02
    return memory_gib * GIB_KI - round(reserved_gib * GIB_KI) - 100 * 1024


def node_manifest(pool: Pool, index: int) -> dict[str, Any]:
    """A Node kwok will manage (annotation), with GKE's labels/taints and allocatable."""
    name = f"gke-test-{pool.name}-{index}"
    labels = {
        POOL_LABEL: pool.name,
        "node.kubernetes.io/instance-type": pool.machine.name,
        "beta.kubernetes.io/instance-type": pool.machine.name,
        "cloud.google.com/machine-family": pool.machine.name.split("-")[0],
        "topology.kubernetes.io/region": ZONE.rsplit("-", 1)[0],
        "topology.kubernetes.io/zone": ZONE,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "type": "kwok",
    }
    taints: list[dict[str, str]] = []
    if pool.spot:
        labels[SPOT_LABEL] = "true"
        taints.append({"key": SPOT_LABEL, "value": "true", "effect": "NoSchedule"})
    capacity = {
        "cpu": str(pool.machine.cpus),
        "memory": f"{pool.machine.memory_gib * GIB_KI}Ki",
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }
    allocatable = {
        "cpu": f"{allocatable_cpu_millis(pool.machine.cpus)}m",
        "memory": f"{allocatable_memory_ki(pool.machine.memory_gib)}Ki",
        "pods": "110",
        "ephemeral-storage": "90Gi",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def all_nodes() -> list[dict[str, Any]]:
    return [node_manifest(pool, i) for pool in POOLS for i in range(pool.nodes)]
