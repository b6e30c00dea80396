"""The economics profile's kwok stages, on the ordinary test cluster.

Why: the swarm benchmark's makespan and retries rest on two claims about servers/cluster/
kwok-stages.yaml and dispatcher/local/economics.py: a step pod stays Running for the time its
`run-time` annotation says (which Argo computes per pod from the order's size and the class),
and a pod on a spot pool is preempted with the configured chance while the on-demand retry never
is. The templates here carry the same expressions economics.annotate() puts on the shipped one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from dispatcher.local import economics
from tests.cluster.plugin import K8sCluster
from tests.cluster.test_cluster import (
    SPOT_TOLERATION,
    api,  # noqa: F401 - fixtures
    core,  # noqa: F401
    create_wf,
    custom,  # noqa: F401
    run_id,  # noqa: F401
    wait_finished,
    workflow,
)

pytestmark = pytest.mark.cluster
GIB = 1024**3


def _profile(tmp_path: Path, *, rate: float) -> economics.Economics:
    path = tmp_path / "economics.yaml"
    path.write_text(
        "run_seconds:\n  small: {a: 1.0, b: 4.0}\n"
        f"default_run_seconds: {{a: 0.5, b: 0.0}}\nspot_preemption_rate: {rate}\n"
    )
    return economics.load(path)


def _spec(profile: economics.Economics, *, size: int, pool: str) -> dict[str, Any]:
    """One step like the shipped template's: an `order` input, the class as a workflow
    parameter, the pool from `retries` (last attempt on the on-demand pool)."""
    step: dict[str, Any] = {
        "name": "step",
        "inputs": {"parameters": [{"name": "order"}]},
        "metadata": {
            "annotations": {
                economics.RUN_TIME: economics.run_time_expression(profile),
                economics.PREEMPT_PERMILLE: str(profile.permille),
                economics.SPOT_POOLS: "small-spot,medium-spot",
            }
        },
        "retryStrategy": {"limit": "1", "retryPolicy": "Always"},
        "nodeSelector": {
            "cloud.google.com/gke-nodepool": f"{{{{=asInt(retries) >= 1 ? 'ondemand' : '{pool}'}}}}"
        },
        "tolerations": [SPOT_TOLERATION],
        "container": {"image": "busybox", "command": ["true"]},
    }
    order = json.dumps({"order_id": "o-1", "size_bytes": size})
    return {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "size-class", "value": "small"}]},
        "templates": [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "run",
                            "template": "step",
                            "arguments": {"parameters": [{"name": "order", "value": order}]},
                        }
                    ]
                ],
            },
            step,
        ],
    }


def _attempts(wf: dict[str, Any]) -> list[dict[str, Any]]:
    pods = [n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"]
    return sorted(pods, key=lambda n: n["name"])


def _seconds(node: dict[str, Any]) -> float:
    started = datetime.fromisoformat(node["startedAt"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(node["finishedAt"].replace("Z", "+00:00"))
    return (finished - started).total_seconds()


def test_run_time_follows_input_size(
    custom: k8s.CustomObjectsApi,  # noqa: F811
    k8s_cluster: K8sCluster,
    run_id: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = k8s_cluster.namespace
    profile = _profile(tmp_path, rate=0.0)
    names = {size: f"econ-{size // GIB}g-{run_id}" for size in (0, 2 * GIB)}
    for size, name in names.items():
        spec = _spec(profile, size=size, pool="small-spot")
        create_wf(custom, ns, workflow(run_id, name, spec))
    took = {}
    for size, name in names.items():
        wf = wait_finished(custom, ns, name)
        assert wf["status"]["phase"] == "Succeeded", wf["status"]
        [attempt] = _attempts(wf)
        took[size] = _seconds(attempt)
    # 1 s + 4 s/GiB: 1 s for an empty input, 9 s for 2 GiB (Argo's times have 1 s resolution).
    assert took[0] <= 4, took
    assert 8 <= took[2 * GIB] <= 14, took


def test_spot_attempts_are_preempted_at_the_rate_and_the_on_demand_retry_is_not(
    custom: k8s.CustomObjectsApi,  # noqa: F811
    core: k8s.CoreV1Api,  # noqa: F811
    k8s_cluster: K8sCluster,
    run_id: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = k8s_cluster.namespace
    profile = _profile(tmp_path, rate=1.0)  # every spot attempt
    name = f"econ-preempt-{run_id}"
    create_wf(custom, ns, workflow(run_id, name, _spec(profile, size=0, pool="small-spot")))
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    first, last = _attempts(wf)
    assert first["phase"] == "Failed" and "imminent node shutdown" in first["message"], first
    assert last["phase"] == "Succeeded", last
    pools = [
        core.read_node(a["hostNodeName"]).metadata.labels["cloud.google.com/gke-nodepool"]
        for a in (first, last)
    ]
    assert pools == ["small-spot", "ondemand"]
    # The same profile on an on-demand pool: never preempted.
    name = f"econ-ondemand-{run_id}"
    create_wf(custom, ns, workflow(run_id, name, _spec(profile, size=0, pool="ondemand")))
    wf = wait_finished(custom, ns, name)
    assert [a["phase"] for a in _attempts(wf)] == ["Succeeded"], wf["status"]
