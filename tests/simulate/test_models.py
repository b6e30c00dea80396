"""The shipped test-cluster models against the infra they describe: the pools of each overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.local import nodepools, nodes
from dispatcher.simulate.model import Pool, load_model

INFRA = Path(__file__).resolve().parents[2] / "k8s" / "infra"


def _overlay_pools(environment: str) -> dict[str, dict[str, Any]]:
    """The ContainerNodePools of an overlay: the base's, patched by name, deleted ones gone."""
    base = {d["metadata"]["name"]: d for d in yaml.safe_load_all((INFRA / "base" / "nodepools.yaml").read_text()) if d}  # fmt: skip
    patches = yaml.safe_load_all((INFRA / "overlays" / environment / "pools.yaml").read_text())
    for patch in filter(None, patches):
        name = patch["metadata"]["name"]
        if patch.get("$patch") == "delete":
            base.pop(name, None)
            continue
        spec = base[name]["spec"]
        for key, value in patch.get("spec", {}).items():
            spec[key] = {**spec.get(key, {}), **value}
    base.pop("system", None)  # runs the platform, not the swarm
    return base


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_autoscaled_model_has_each_overlays_pools(environment: str) -> None:
    model = load_model("test-cluster-autoscaled").for_environment(environment)
    modelled: dict[str, Pool] = {p.name: p for p in model.pools}
    for name, pool in _overlay_pools(environment).items():
        shape = nodepools.pool_machine(pool)
        got = modelled[name]
        assert got.machine_type == shape.name, name
        assert got.max_nodes == pool["spec"]["autoscaling"]["totalMaxNodeCount"], name
        assert got.spot == nodepools.pool_spot(pool), name
        assert got.cpu == pytest.approx(nodes.allocatable_cpu_millis(shape.cpus) / 1000, abs=0.01)
        memory = nodes.allocatable_memory_ki(shape.memory_gib) / 2**20
        assert got.memory_gib == pytest.approx(memory, abs=0.1), name
        assert (got.preemptions_per_attempt > 0) == got.spot, name
