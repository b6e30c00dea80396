"""The Karpenter NodePools and instance types are derived from the shipped GKE pools, not copied:
names through the nodepool label, spot, taints, machine shapes, maxima, consolidation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dispatcher.local import autoscaler, nodepools, nodes


def _pools() -> list[dict[str, Any]]:
    return autoscaler.base_pools()


def _by_name(made: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in made}


def test_every_batch_pool_and_only_those_become_node_pools() -> None:
    shipped = [d for d in _pools() if d["kind"] == "ContainerNodePool"]
    zero_min = {
        d["metadata"]["name"]
        for d in shipped
        if d["spec"]["autoscaling"].get("totalMinNodeCount", 0) == 0
    }
    made = _by_name(nodepools.node_pools(_pools()))
    assert set(made) == zero_min
    assert "system" not in made  # minimum 1: hosts what runs as local processes here
    for name, pool in made.items():
        assert pool["spec"]["template"]["metadata"]["labels"][nodes.POOL_LABEL] == name


def test_spot_pools_are_spot_capacity_with_gke_spot_label_and_taints() -> None:
    shipped = _by_name([d for d in _pools() if d["kind"] == "ContainerNodePool"])
    for name, pool in _by_name(nodepools.node_pools(_pools())).items():
        spec = pool["spec"]["template"]["spec"]
        spot = bool(shipped[name]["spec"]["nodeConfig"].get("spot"))
        capacity = next(r for r in spec["requirements"] if r["key"] == nodepools.CAPACITY_TYPE)
        assert capacity["values"] == (["spot"] if spot else ["on-demand"])
        labels = pool["spec"]["template"]["metadata"]["labels"]
        assert (labels.get(nodes.SPOT_LABEL) == "true") is spot
        want = {
            (t["key"], t["value"], nodepools.EFFECTS[t["effect"]])
            for t in shipped[name]["spec"]["nodeConfig"].get("taint", [])
        }
        assert {(t["key"], t["value"], t["effect"]) for t in spec["taints"]} == want
        maximum = shipped[name]["spec"]["autoscaling"]["totalMaxNodeCount"]
        assert pool["spec"]["limits"]["nodes"] == str(maximum)
        # The cpu limit admits exactly `maximum` nodes of the pool's one instance type.
        shape = next(
            t
            for t in nodepools.instance_types(_pools())
            if t["name"] == spec["requirements"][0]["values"][0]
        )
        per_node = int(shape["resources"]["cpu"].removesuffix("m"))
        assert pool["spec"]["limits"]["cpu"] == f"{per_node * maximum}m"


def test_consolidation_acts_like_optimize_utilization(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = nodepools.node_pools(_pools())[0]
    assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert pool["spec"]["disruption"]["consolidateAfter"] == nodepools.CONSOLIDATE_AFTER
    empty = [b for b in pool["spec"]["disruption"]["budgets"] if b.get("reasons") == ["Empty"]]
    assert empty == [{"nodes": "100%", "reasons": ["Empty"]}]  # empty nodes all at once
    # Karpenter applies the most restrictive budget whose reasons match (none: every reason), so
    # no other budget may cover Empty, or empty nodes go one per disruption loop again.
    others = [b for b in pool["spec"]["disruption"]["budgets"] if b not in empty]
    assert others and all(b.get("reasons") and "Empty" not in b["reasons"] for b in others)
    monkeypatch.setenv("BURST_CLUSTER_CONSOLIDATE_AFTER", "40s")
    assert nodepools.node_pools(_pools())[0]["spec"]["disruption"]["consolidateAfter"] == "40s"


@pytest.mark.parametrize(
    ("machine", "cpus", "memory_gib"),
    [("e2-standard-4", 4, 16), ("n2-standard-8", 8, 32), ("n2-highmem-16", 16, 128)],
)
def test_machine_shapes(machine: str, cpus: int, memory_gib: int) -> None:
    assert nodepools.machine_type(machine) == nodes.MachineType(machine, cpus, memory_gib)


def test_instance_types_give_gke_allocatable_after_karpenters_overhead() -> None:
    types = {t["name"]: t for t in nodepools.instance_types(_pools())}
    machines = {nodepools.pool_machine(p).name for p in nodepools.scaled_pools(_pools())}
    assert set(types) == machines
    n2 = types["n2-standard-8"]["resources"]
    cpu_millis = int(n2["cpu"].removesuffix("m")) - nodepools.KWOK_OVERHEAD_CPU_MILLIS
    assert cpu_millis == nodes.allocatable_cpu_millis(8)
    memory_ki = int(n2["memory"].removesuffix("Ki")) - nodepools.KWOK_OVERHEAD_MEMORY_KI
    assert memory_ki == nodes.allocatable_memory_ki(32)
    capacities = {o["Requirements"][0]["values"][0] for o in types["n2-standard-8"]["offerings"]}
    assert capacities == {"spot", "on-demand"}


def test_a_changed_shipped_pool_changes_the_node_pool() -> None:
    pools = copy.deepcopy(_pools())
    small = next(p for p in pools if p["metadata"]["name"] == "small-spot")
    small["spec"]["nodeConfig"]["machineType"] = "n2-highmem-16"
    small["spec"]["autoscaling"]["totalMaxNodeCount"] = 3
    made = _by_name(nodepools.node_pools(pools))["small-spot"]
    requirement = made["spec"]["template"]["spec"]["requirements"][0]
    assert requirement == {
        "key": nodepools.INSTANCE_TYPE,
        "operator": "In",
        "values": ["n2-highmem-16"],
    }
    assert made["spec"]["limits"]["nodes"] == "3"
    with pytest.raises(ValueError, match="unknown machine type"):
        nodepools.machine_type("t2a-custom-4")
