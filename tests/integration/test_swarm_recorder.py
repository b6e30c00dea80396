"""bench.swarm's recorder against the real API server: Node lifetimes and Workflows, watched.

The swarm's cost rests on node lifetimes per pool and its check on the order-ids of finished
Workflows; both come from the recorder's watches, so this test makes a kwok Node and deletes
it, and creates a Workflow, and reads them back the way bench.swarm does.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.swarm_cost import node_seconds
from bench.swarm_watch import Recorder, etcd_metrics_url
from dispatcher.core.render import LABEL_ENVIRONMENT
from dispatcher.local import cluster, nodes
from tests.integration.cluster_support import create_workflow, delete_workflows
from tests.integration.cluster_support import ensure_test_template as ensure_template
from tests.polling import poll

pytestmark = [pytest.mark.cluster]


def test_recorder_sees_a_node_come_and_go_and_a_workflow(k8s_cluster: Any) -> None:
    from kubernetes import client as k8s

    info = cluster.load_info()
    assert info is not None
    tag = uuid.uuid4().hex[:8]
    pool = f"bench-{tag}"
    node = nodes.node_manifest(nodes.Pool(pool, nodes.E2_STANDARD_4, spot=True), 0)
    with k8s_cluster.api_client() as api:
        ensure_template(api, k8s_cluster.namespace)
        recorder = Recorder(
            api, metrics_url="http://127.0.0.1:1/metrics",
            etcd_url=etcd_metrics_url(Path(info.state)),
        )  # fmt: skip
        start = time.monotonic()
        recorder.start(lambda _now: {}, interval=0.5)
        core = k8s.CoreV1Api(api)
        try:
            core.create_node(node)
            name = node["metadata"]["name"]
            poll(lambda: name in recorder.nodes, 30, "the Node's ADDED")
            core.delete_node(name)
            poll(lambda: recorder.nodes[name].gone is not None, 30, "the Node's DELETED")
            life = recorder.nodes[name]
            assert (life.pool, life.machine, life.spot, life.vcpus) == (
                pool, "e2-standard-4", True, 4.0,
            )  # fmt: skip
            # Its life spans ADDED to DELETED: one poll and a delete call, often under 0.05 s,
            # which the per-pool total rounds to 0.0; the pool is listed only for a life > 0.
            end = time.monotonic()
            assert 0 < life.seconds(start, end) < 30
            assert set(node_seconds([life], start=start, end=end)) == {pool}
            create_workflow(
                api, k8s_cluster.namespace, name=f"rec-{tag}", environment=f"r{tag}",
                order_ids=["o-1", "o-2"],
            )  # fmt: skip
            # Seen with its order ids (when it finishes is timed from the same events: the
            # unit tests replay them; waiting for Argo here would only test Argo's speed).
            key = f"{k8s_cluster.namespace}/rec-{tag}"
            poll(lambda: key in recorder.workflows, 60, "the Workflow's ADDED")
            seen = recorder.workflows[key]
            assert (seen.environment, seen.orders) == (f"r{tag}", frozenset({"o-1", "o-2"}))
            poll(lambda: len(recorder.samples) >= 2, 30, "two samples")
            assert recorder.samples[-1]["etcd_bytes"] > 0  # etcd's own /metrics answered
        finally:
            recorder.stop()
            delete_workflows(api, k8s_cluster.namespace, f"{LABEL_ENVIRONMENT}=r{tag}")
            if name_exists(core, node["metadata"]["name"]):
                core.delete_node(node["metadata"]["name"])


def name_exists(core: Any, name: str) -> bool:
    return any(n.metadata.name == name for n in core.list_node().items)
