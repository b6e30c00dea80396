"""The local test cluster behaves like GKE + Argo where the dispatcher depends on it.

Why: these are the API and controller semantics the dispatcher is built on (409 on a duplicate
Workflow name, label-selector list/watch, workflowTemplateRef, DAG `when`, onExit, retries of
preempted pods, GKE pool labels/taints). If the harness drifts from them, every cluster test above
it lies. Templates here declare no `outputs`: no executor runs on kwok nodes, so a template with
outputs would wait forever for WorkflowTaskResult objects.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tests.cluster.plugin import K8sCluster

pytestmark = pytest.mark.cluster

GROUP, VERSION = "argoproj.io", "v1alpha1"
WORKFLOWS, TEMPLATES = "workflows", "workflowtemplates"
RUN_LABEL = "burst-dispatcher.test/run"
TIMEOUT = 60.0
FINISHED = {"Succeeded", "Failed", "Error"}
SPOT_TOLERATION = {
    "key": "cloud.google.com/gke-spot",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}


@pytest.fixture
def api(k8s_cluster: K8sCluster) -> Iterator[k8s.ApiClient]:
    with k8s_cluster.api_client() as client:
        yield client


@pytest.fixture
def custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


@pytest.fixture
def core(api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api)


@pytest.fixture
def run_id(
    custom: k8s.CustomObjectsApi, core: k8s.CoreV1Api, k8s_cluster: K8sCluster
) -> Iterator[str]:
    """A label value unique to the test; everything labelled with it is deleted afterwards."""
    rid = uuid.uuid4().hex[:10]
    yield rid
    ns, selector = k8s_cluster.namespace, f"{RUN_LABEL}={rid}"
    for plural in (WORKFLOWS, TEMPLATES):
        for obj in custom.list_namespaced_custom_object(
            GROUP, VERSION, ns, plural, label_selector=selector
        )["items"]:
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, ns, plural, obj["metadata"]["name"]
            )
    core.delete_collection_namespaced_pod(ns, label_selector=selector)


def poll(what: str, fetch: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """fetch() until done(value) or the deadline; the last value is in the failure message."""
    deadline = time.monotonic() + TIMEOUT
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT:.0f}s waiting for {what}; last: {value}")
        time.sleep(0.2)
        value = fetch()
    return value


def create_wf(custom: k8s.CustomObjectsApi, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, WORKFLOWS, body
    )
    return result


def wait_finished(custom: k8s.CustomObjectsApi, ns: str, name: str) -> dict[str, Any]:
    """The Workflow once its phase is final."""
    wf: dict[str, Any] = poll(
        f"Workflow {name} to finish",
        lambda: custom.get_namespaced_custom_object(GROUP, VERSION, ns, WORKFLOWS, name),
        lambda wf: (wf.get("status") or {}).get("phase") in FINISHED,
    )
    return wf


def nodes_by_display_name(wf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["displayName"]: n for n in wf["status"]["nodes"].values()}


def container(name: str = "main", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A leaf template without outputs (see module docstring)."""
    tmpl: dict[str, Any] = {
        "name": name,
        "container": {"image": "busybox", "command": ["true"]},
    }
    if annotations:
        tmpl["metadata"] = {"annotations": annotations}
    return tmpl


def workflow(rid: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": {RUN_LABEL: rid}},
        "spec": spec,
    }


def test_workflow_from_template_succeeds(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    template = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowTemplate",
        "metadata": {"name": f"tmpl-{run_id}", "labels": {RUN_LABEL: run_id}},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "orders"}]},
            "templates": [container()],
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, TEMPLATES, template)
    name = f"from-tmpl-{run_id}"
    create_wf(
        custom,
        ns,
        workflow(
            run_id,
            name,
            {
                "workflowTemplateRef": {"name": f"tmpl-{run_id}"},
                "arguments": {"parameters": [{"name": "orders", "value": "a,b"}]},
            },
        ),
    )
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    pods = [n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"]
    assert len(pods) == 1
    assert pods[0]["phase"] == "Succeeded"


def test_duplicate_workflow_name_is_409(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    body = workflow(run_id, f"dup-{run_id}", {"entrypoint": "main", "templates": [container()]})
    create_wf(custom, ns, body)
    with pytest.raises(ApiException) as info:
        create_wf(custom, ns, body)
    assert info.value.status == 409


def test_list_and_watch_by_label_selector(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    spec = {"entrypoint": "main", "templates": [container()]}
    mine = {f"mine-{i}-{run_id}" for i in range(3)}
    for name in sorted(mine):
        body = workflow(run_id, name, spec)
        body["metadata"]["labels"]["batch"] = run_id
        create_wf(custom, ns, body)
    other = workflow(run_id, f"other-{run_id}", spec)
    other["metadata"]["labels"]["batch"] = "someone-else"
    create_wf(custom, ns, other)

    selector = f"batch={run_id}"
    listed = custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, WORKFLOWS, label_selector=selector
    )
    assert {i["metadata"]["name"] for i in listed["items"]} == mine

    succeeded: set[str] = set()
    seen: set[str] = set()
    watcher = watch.Watch()
    deadline = time.monotonic() + TIMEOUT
    for event in watcher.stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        ns,
        WORKFLOWS,
        label_selector=selector,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=int(TIMEOUT),
    ):
        obj = event["object"]
        seen.add(obj["metadata"]["name"])
        if (obj.get("status") or {}).get("phase") == "Succeeded":
            succeeded.add(obj["metadata"]["name"])
        if succeeded == mine or time.monotonic() > deadline:
            watcher.stop()
    assert seen <= mine, f"watch leaked objects outside the selector: {seen - mine}"
    assert succeeded == mine


def test_dag_when_skips_optional_step_and_dependant_runs(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    name = f"dag-{run_id}"
    spec = {
        "entrypoint": "dag",
        "arguments": {"parameters": [{"name": "optional", "value": "false"}]},
        "templates": [
            {
                "name": "dag",
                "dag": {
                    "tasks": [
                        {"name": "prepare", "template": "main"},
                        {
                            "name": "optional",
                            "template": "main",
                            "dependencies": ["prepare"],
                            "when": "{{workflow.parameters.optional}} == true",
                        },
                        {"name": "finish", "template": "main", "dependencies": ["optional"]},
                    ]
                },
            },
            container(),
        ],
    }
    create_wf(custom, ns, workflow(run_id, name, spec))
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = nodes_by_display_name(wf)
    assert nodes["prepare"]["phase"] == "Succeeded"
    assert nodes["optional"]["phase"] == "Skipped"
    assert nodes["finish"]["phase"] == "Succeeded"


def test_on_exit_runs_when_a_step_fails(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    name = f"onexit-{run_id}"
    spec = {
        "entrypoint": "steps",
        "onExit": "report",
        "templates": [
            {
                "name": "steps",
                "steps": [
                    [{"name": "work", "template": "broken"}],
                    [{"name": "never", "template": "main"}],
                ],
            },
            container("broken", {"burst-dispatcher.test/fail": "true"}),
            container("report"),
            container(),
        ],
    }
    create_wf(custom, ns, workflow(run_id, name, spec))
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Failed", wf["status"]
    nodes = nodes_by_display_name(wf)
    assert nodes["work"]["phase"] == "Failed"
    assert "exit code 1" in nodes["work"]["message"]
    assert "never" not in nodes
    assert nodes[f"{name}.onExit"]["phase"] == "Succeeded"


def test_fail_annotation_sets_exit_code_on_main(
    core: k8s.CoreV1Api, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    name = f"fail-{run_id}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {RUN_LABEL: run_id},
            "annotations": {
                "burst-dispatcher.test/fail": "true",
                "burst-dispatcher.test/exit-code": "42",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "wait", "image": "busybox"},
                {"name": "main", "image": "busybox"},
            ],
        },
    }
    core.create_namespaced_pod(ns, pod)
    got = poll(
        f"pod {name} Failed",
        lambda: core.read_namespaced_pod(name, ns),
        lambda p: p.status.phase in {"Failed", "Succeeded"},
    )
    assert got.status.phase == "Failed"
    exit_codes = {c.name: c.state.terminated.exit_code for c in got.status.container_statuses}
    assert exit_codes == {"wait": 0, "main": 42}


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_preempted_pod_is_retried(
    custom: k8s.CustomObjectsApi,
    core: k8s.CoreV1Api,
    k8s_cluster: K8sCluster,
    run_id: str,
    policy: str,
) -> None:
    ns = k8s_cluster.namespace
    name = f"preempt-{policy.lower()}-{run_id}"
    step = container("main", {"burst-dispatcher.test/preempt": "true"})
    step["retryStrategy"] = {"limit": "2", "retryPolicy": policy}
    step["tolerations"] = [SPOT_TOLERATION]
    step["nodeSelector"] = {"cloud.google.com/gke-nodepool": "small-spot"}
    create_wf(custom, ns, workflow(run_id, name, {"entrypoint": "main", "templates": [step]}))
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    attempts = sorted(
        (n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"),
        key=lambda n: n["name"],
    )
    assert [a["phase"] for a in attempts] == ["Failed", "Succeeded"]
    assert "imminent node shutdown" in attempts[0]["message"]
    preempted = core.read_namespaced_pod(
        poll(
            "pod name of the first attempt",
            lambda: _pod_names(core, ns, name),
            lambda names: len(names) == 2,
        )[0],
        ns,
    )
    conditions = {c.type: c for c in preempted.status.conditions}
    assert conditions["DisruptionTarget"].status == "True"
    assert preempted.status.reason == "Terminated"
    node = core.read_node(preempted.spec.node_name)
    assert node.metadata.labels["cloud.google.com/gke-nodepool"] == "small-spot"


def _pod_names(core: k8s.CoreV1Api, ns: str, workflow_name: str) -> list[str]:
    pods = core.list_namespaced_pod(
        ns, label_selector=f"workflows.argoproj.io/workflow={workflow_name}"
    ).items
    pods.sort(key=lambda p: p.metadata.annotations["workflows.argoproj.io/node-name"])
    return [p.metadata.name for p in pods]


def test_always_preempted_exhausts_retries(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    name = f"preempt-always-{run_id}"
    step = container("main", {"burst-dispatcher.test/preempt": "always"})
    step["retryStrategy"] = {"limit": "1", "retryPolicy": "Always"}
    step["tolerations"] = [SPOT_TOLERATION]
    create_wf(custom, ns, workflow(run_id, name, {"entrypoint": "main", "templates": [step]}))
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Failed", wf["status"]
    attempts = [n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"]
    assert [a["phase"] for a in attempts] == ["Failed", "Failed"]


def test_node_pools_look_like_gke(core: k8s.CoreV1Api) -> None:
    pools: dict[str, list[k8s.V1Node]] = {}
    for node in core.list_node(label_selector="type=kwok").items:
        pools.setdefault(node.metadata.labels["cloud.google.com/gke-nodepool"], []).append(node)
    assert set(pools) == {"small-spot", "medium-spot", "large", "ondemand"}
    machine = {"small-spot": "e2-standard-4", "medium-spot": "n2-standard-8"}
    machine |= {"large": "n2-highmem-16", "ondemand": "e2-standard-4"}
    for pool, members in pools.items():
        spot = pool.endswith("-spot")
        for node in members:
            labels = node.metadata.labels
            assert labels["node.kubernetes.io/instance-type"] == machine[pool]
            assert (labels.get("cloud.google.com/gke-spot") == "true") is spot
            taints = {(t.key, t.value, t.effect) for t in node.spec.taints or []}
            assert (("cloud.google.com/gke-spot", "true", "NoSchedule") in taints) is spot
    assert pools["large"][0].status.allocatable["cpu"] == "15890m"


def test_pod_without_spot_toleration_avoids_spot_pools(
    core: k8s.CoreV1Api, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    names = [f"placement-{i}-{run_id}" for i in range(4)]
    for name in names:
        core.create_namespaced_pod(
            ns,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {RUN_LABEL: run_id}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "3", "memory": "8Gi"}},
                        }
                    ],
                },
            },
        )
    for name in names:
        pod = poll(
            f"pod {name} scheduled",
            functools.partial(core.read_namespaced_pod, name, ns),
            lambda p: bool(p.spec.node_name),
        )
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels["cloud.google.com/gke-nodepool"] in {"large", "ondemand"}


def test_deleted_pod_is_error_and_retried(
    custom: k8s.CustomObjectsApi, k8s_cluster: K8sCluster, run_id: str
) -> None:
    ns = k8s_cluster.namespace
    name = f"preempt-delete-{run_id}"
    step = container("main", {"burst-dispatcher.test/preempt": "delete"})
    step["retryStrategy"] = {"limit": "2", "retryPolicy": "Always"}
    create_wf(custom, ns, workflow(run_id, name, {"entrypoint": "main", "templates": [step]}))
    wf = wait_finished(custom, ns, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    attempts = sorted(
        (n for n in wf["status"]["nodes"].values() if n["type"] == "Pod"),
        key=lambda n: n["name"],
    )
    assert [(a["phase"], a.get("message")) for a in attempts] == [
        ("Error", "pod deleted"),
        ("Succeeded", None),
    ]
