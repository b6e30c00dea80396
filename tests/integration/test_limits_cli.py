"""``dispatcher limits status|set`` against the real test cluster's API server.

Each test gets a namespace of its own holding the dispatcher's ConfigMap (the built-in
configuration, pointed at that namespace), so counts are not disturbed by other tests. The
Workflows created here carry another controller's instance id, so Argo's controller leaves
them exactly as written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from kubernetes import client as k8s

from dispatcher.adapters.configmap import read_config, write_config
from dispatcher.cli import cli
from dispatcher.config import default_config_text, parse_settings
from dispatcher.core.render import is_live, selector
from dispatcher.errors import PermanentError

pytestmark = pytest.mark.cluster

CONFIGMAP = "burst-dispatcher-config"


@pytest.fixture
def space(k8s_cluster: Any) -> Iterator[tuple[str, Any]]:
    api = k8s_cluster.api_client()
    core = k8s.CoreV1Api(api)
    namespace = f"bd-limits-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    text = default_config_text().replace("namespace: burst-dispatcher", f"namespace: {namespace}")
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": CONFIGMAP}, "data": {"config.yaml": text}}
    )
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "burst-dispatcher-semaphores"},
            "data": {"small": "50", "medium": "25", "large": "6"},
        },
    )
    try:
        yield namespace, api
    finally:
        core.delete_namespace(namespace)
        api.close()


def run(k8s_cluster: Any, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--log-format", "json", *args, "--kubeconfig", k8s_cluster.kubeconfig]
    )


def config_text(api: Any, namespace: str) -> str:
    return read_config(api, namespace=namespace, name=CONFIGMAP).text


def test_dry_run_shows_the_diff_and_stores_nothing(k8s_cluster: Any, space: Any) -> None:
    namespace, api = space
    before = config_text(api, namespace)
    result = run(
        k8s_cluster,
        "limits",
        "set",
        "--namespace",
        namespace,
        "--class",
        "small",
        "--max-live",
        "7",
        "--rate",
        "2.5",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert "classes[small].max_live_workflows" in result.stdout
    assert "limits.workflows_per_second" in result.stdout and "dry run" in result.stdout
    assert config_text(api, namespace) == before


def test_set_patches_the_configmap_and_keeps_its_comments(k8s_cluster: Any, space: Any) -> None:
    namespace, api = space
    result = run(
        k8s_cluster,
        "limits",
        "set",
        "--namespace",
        namespace,
        "--class",
        "small",
        "--max-live",
        "7",
        "--class",
        "large",
        "--max-live",
        "1",
        "--burst",
        "30",
    )
    assert result.exit_code == 0, result.output
    assert "patched" in result.stdout and "semaphore" not in result.stdout
    text = config_text(api, namespace)
    assert "# global creation rate (shared by all replicas)" in text
    settings = parse_settings(text, source="cm", environ={})
    assert settings.size_class("small").max_live_workflows == 7
    assert settings.size_class("large").max_live_workflows == 1
    assert settings.size_class("medium").max_live_workflows == 20
    assert settings.limits.burst == 30


def test_invalid_values_are_refused_and_nothing_changes(k8s_cluster: Any, space: Any) -> None:
    namespace, api = space
    before = config_text(api, namespace)
    zero = run(k8s_cluster, "limits", "set", "--namespace", namespace, "--burst", "0")
    assert zero.exit_code == 1 and "limits.burst" in zero.output
    unknown = run(
        k8s_cluster, "limits", "set", "--namespace", namespace, "--class", "huge", "--max-live", "1"
    )
    assert unknown.exit_code == 1 and "no size class 'huge'" in unknown.output
    missing = run(
        k8s_cluster,
        "limits",
        "set",
        "--namespace",
        namespace,
        "--configmap",
        "nope",
        "--burst",
        "3",
    )
    assert missing.exit_code == 1 and "not found" in missing.output
    assert config_text(api, namespace) == before


def test_a_concurrent_edit_is_not_overwritten(space: Any) -> None:
    namespace, api = space
    stale = read_config(api, namespace=namespace, name=CONFIGMAP)
    k8s.CoreV1Api(api).patch_namespaced_config_map(
        CONFIGMAP, namespace, {"data": {"config.yaml": stale.text + "\n# someone else\n"}}
    )
    with pytest.raises(PermanentError) as refused:
        write_config(api, stale, stale.text.replace("burst: 20", "burst: 21"), dry_run=False)
    assert refused.value.status == 409
    assert config_text(api, namespace).endswith("# someone else\n")


def workflow(
    name: str,
    size_class: str,
    phase: str | None,
    *,
    managed: bool = True,
    environment: str = "dev",
) -> dict[str, Any]:
    labels = {
        "burst-dispatcher.io/size-class": size_class,
        "burst-dispatcher.io/environment": environment,
        # Not this cluster's controller: Argo leaves the object (and its phase) alone.
        "workflows.argoproj.io/controller-instanceid": "not-the-test-controller",
    }
    if managed:
        labels["app.kubernetes.io/managed-by"] = "burst-dispatcher"
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": labels},
        "spec": {"workflowTemplateRef": {"name": "order-pipeline"}},
    }
    if phase is not None:
        body["status"] = {"phase": phase}
    return body


def test_status_counts_live_workflows_per_class(k8s_cluster: Any, space: Any) -> None:
    namespace, api = space
    objects = k8s.CustomObjectsApi(api)
    bodies = [
        workflow("s1", "small", None),
        workflow("s2", "small", "Running"),
        workflow("s3", "small", "Succeeded"),
        workflow("m1", "medium", None),
        workflow("other", "small", None, managed=False),
        workflow("staging-1", "small", None, environment="staging"),  # another environment
    ]
    for body in bodies:
        objects.create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "workflows", body
        )
    stored = objects.list_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "workflows",
        label_selector=selector("dev"),
    )["items"]
    # The CRD may or may not store a status written at creation; count what the server holds.
    live_small = sum(
        1
        for w in stored
        if w["metadata"]["labels"]["burst-dispatcher.io/size-class"] == "small" and is_live(w)
    )
    result = run(k8s_cluster, "limits", "status", "--namespace", namespace, "--json")
    assert result.exit_code == 0, result.output
    census = json.loads(result.stdout)
    rows = {row["class"]: row for row in census["classes"]}
    assert census["namespace"] == namespace and census["total_objects"] == 4
    assert rows["small"]["live"] == live_small and rows["small"]["cap"] == 40
    assert rows["medium"]["live"] == 1 and rows["large"]["live"] == 0
    assert census["max_workflow_objects"] == 2000

    assert census["argo_semaphores"] == {"small": 50, "medium": 25, "large": 6}

    raised = run(
        k8s_cluster,
        "limits",
        "set",
        "--namespace",
        namespace,
        "--class",
        "small",
        "--max-live",
        "80",
    )
    assert raised.exit_code == 0, raised.output
    assert "above Argo's semaphore 50" in " ".join(raised.stdout.split())
    table = run(k8s_cluster, "limits", "status", "--namespace", namespace)
    assert table.exit_code == 0, table.output
    assert "objects: 4 of limits.max_workflow_objects 2,000" in " ".join(table.stdout.split())


def test_pause_drain_resume_edit_the_class_state(k8s_cluster: Any, space: Any) -> None:
    namespace, api = space
    direct = config_text(api, namespace)
    refused = run(k8s_cluster, "limits", "pause", "--namespace", namespace, "--class", "large")
    assert refused.exit_code == 1 and "class_topics" in refused.output
    assert config_text(api, namespace) == direct
    k8s.CoreV1Api(api).patch_namespaced_config_map(
        CONFIGMAP,
        namespace,
        {"data": {"config.yaml": direct.replace("routing: direct ", "routing: class_topics ")}},
    )
    before = config_text(api, namespace)

    def state(cls: str) -> str:
        return (
            parse_settings(config_text(api, namespace), source="cm", environ={})
            .size_class(cls)
            .state
        )

    dry = run(
        k8s_cluster, "limits", "pause", "--namespace", namespace, "--class", "large", "--dry-run"
    )
    assert dry.exit_code == 0, dry.output
    assert "classes[large].state" in dry.stdout and "paused" in dry.stdout
    assert "dry run" in dry.stdout and config_text(api, namespace) == before

    paused = run(k8s_cluster, "limits", "pause", "--namespace", namespace, "--class", "large")
    assert paused.exit_code == 0 and "patched" in paused.stdout, paused.output
    assert state("large") == "paused" and state("small") == "active"
    assert "# global creation rate (shared by all replicas)" in config_text(api, namespace)

    drained = run(
        k8s_cluster,
        "limits",
        "drain",
        "--namespace",
        namespace,
        "--class",
        "large",
        "--class",
        "small",
    )
    assert drained.exit_code == 0, drained.output
    assert (state("large"), state("small")) == ("draining", "draining")

    resumed = run(
        k8s_cluster,
        "limits",
        "resume",
        "--namespace",
        namespace,
        "--class",
        "large",
        "--class",
        "small",
    )
    assert resumed.exit_code == 0, resumed.output
    assert config_text(api, namespace).replace("    state: active\n", "") == before
    unknown = run(k8s_cluster, "limits", "pause", "--namespace", namespace, "--class", "huge")
    assert unknown.exit_code == 1 and "no size class 'huge'" in unknown.output
