"""The objects a fresh local cluster starts with, and the proof that it works.

Why apart from the start sequence: what exists in a new cluster (Argo's CRDs, the namespaces,
Argo's ConfigMap, the kwok nodes, the RBAC of k8s/base) and the smoke Workflow that proves the
scheduler, kwok's stages and Argo work together are facts about the cluster's contents, while
cluster_start.py is about processes, ports and readiness.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import utils as k8s_utils
from kubernetes.client.rest import ApiException

from dispatcher.local import nodes, procs
from dispatcher.local.paths import REPO_ROOT, share_dir

# The tests' own namespace, not the overlay's (`burst-dispatcher`): tests that apply the shipped
# overlay (the rehearsal, the deploy guide) bring its admission policy, which admits only the
# shipped WorkflowTemplate there, while the loop tests run a light template of their own.
NAMESPACE = "bd-tests"
ARGO_NAMESPACE = "argo"
ARGO_CONFIGMAP = "workflow-controller-configmap"
READY_TIMEOUT = 90.0
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}

# Argo's controller config. Metrics are off (they would need a fixed port); the executor image is
# never pulled because kwok fakes every pod's lifecycle.
ARGO_CONFIG: dict[str, str] = {
    "metricsConfig": "enabled: false\n",
    "telemetryConfig": "enabled: false\n",
}


def exists(read: Callable[..., Any], *args: str) -> bool:
    """True when read(*args) finds the object, False on 404; other errors propagate."""
    try:
        read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def install_argo_crds(api_client: k8s.ApiClient, bins: Path) -> None:
    """Create Argo's CRDs (build.sh's copy in share/argo-crds) and wait until served."""
    ext = k8s.ApiextensionsV1Api(api_client)
    names: list[str] = []
    crd_dir = share_dir(bins) / "argo-crds"
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            ext.create_custom_resource_definition(doc)
            names.append(doc["metadata"]["name"])
    if not names:
        raise RuntimeError(f"no Argo CRDs found in {crd_dir}")

    def established() -> bool:
        for name in names:
            crd = ext.read_custom_resource_definition(name)
            conditions = crd.status.conditions or [] if crd.status else []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    procs.wait_for("Argo CRDs Established", established, READY_TIMEOUT)


ARGO_SNIPPET = REPO_ROOT / "k8s" / "argo" / "workflow-controller-configmap.yaml"


def apply_argo_snippet(api_client: k8s.ApiClient, snippet: Path = ARGO_SNIPPET) -> dict[str, str]:
    """Merge the shipped controller settings (k8s/argo, docs/deploy.md step 5) into the running
    controller's ConfigMap, as an operator does; the controller watches it and takes them live.

    Only the local stack does this: `templateReferencing: Strict` would refuse the inline
    Workflows the tests' own cluster runs (the smoke Workflow, the loop tests' light template).
    The local ConfigMap's own keys (metrics off) stay."""
    data = {str(k): str(v) for k, v in yaml.safe_load(snippet.read_text())["data"].items()}
    k8s.CoreV1Api(api_client).patch_namespaced_config_map(
        ARGO_CONFIGMAP, ARGO_NAMESPACE, {"data": data}
    )
    return data


def create_base_objects(api_client: k8s.ApiClient, *, fixed_nodes: bool = True) -> None:
    """The namespaces, Argo's ConfigMap and (unless an autoscaler makes them) the kwok nodes of
    every pool."""
    core = k8s.CoreV1Api(api_client)
    for ns in (NAMESPACE, ARGO_NAMESPACE):
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    core.create_namespaced_config_map(
        ARGO_NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ARGO_CONFIGMAP},
            "data": ARGO_CONFIG,
        },
    )
    for node in nodes.all_nodes() if fixed_nodes else []:
        core.create_node(node)


def nodes_ready(core: k8s.CoreV1Api) -> bool:
    """True when every kwok node of the pools exists and is Ready."""
    listed = core.list_node(label_selector="type=kwok").items
    if len(listed) != len(nodes.all_nodes()):
        return False
    for node in listed:
        conditions = node.status.conditions or [] if node.status else []
        if not any(c.type == "Ready" and c.status == "True" for c in conditions):
            return False
    return True


def apply_base_rbac(api_client: k8s.ApiClient, base: Path | None = None) -> int:
    """Create the ServiceAccount/Role/RoleBinding objects found in k8s/base (if it exists).

    Plain YAML only: kustomize transformations (namePrefix, patches) are not applied; objects
    without a namespace go to the dispatcher's namespace. Returns how many objects were created.
    """
    base = base or REPO_ROOT / "k8s" / "base"
    if not base.is_dir():
        return 0
    created = 0
    for path in sorted([*base.glob("*.yaml"), *base.glob("*.yml")]):
        if path.name.startswith("kustomization"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in RBAC_KINDS:
                continue
            namespaced = doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
            if namespaced:
                doc.setdefault("metadata", {}).setdefault("namespace", NAMESPACE)
            try:
                k8s_utils.create_from_dict(api_client, doc)
            except k8s_utils.FailToCreateError as exc:
                if all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
                    continue
                raise
            created += 1
    return created


def smoke_workflow(api_client: k8s.ApiClient, argo: procs.Proc) -> None:
    """One trivial Workflow end to end: proves scheduler, kwok stages and Argo all work."""
    custom = k8s.CustomObjectsApi(api_client)
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}],
        },
    }
    group, version, plural = "argoproj.io", "v1alpha1", "workflows"
    custom.create_namespaced_custom_object(group, version, ARGO_NAMESPACE, plural, body)

    def succeeded() -> bool:
        wf = custom.get_namespaced_custom_object(group, version, ARGO_NAMESPACE, plural, name)
        phase = (wf.get("status") or {}).get("phase")
        if phase in {"Failed", "Error"}:
            raise procs.Fatal(f"smoke Workflow {name} ended {phase}: {wf.get('status')}")
        return bool(phase == "Succeeded")

    procs.wait_for(f"smoke Workflow {name} Succeeded", succeeded, READY_TIMEOUT, argo)
    custom.delete_namespaced_custom_object(group, version, ARGO_NAMESPACE, plural, name)
