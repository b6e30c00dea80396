"""Argo's workflow-controller as its own least-privilege account, as Argo installs it.

Why: a controller running as `system:masters` hides every permission the shipped manifests
forget (a WorkflowTemplate's semaphore ConfigMap, a pod's PriorityClass, ...). Argo's own
cluster-install RBAC (ServiceAccount `argo`, ClusterRole `argo-cluster-role`, Role `argo-role`
and their bindings) is taken from the pinned argo-workflows module in the Go module cache, the
same module the controller binary is built from, and the controller gets a bound token of that
ServiceAccount in a kubeconfig of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import utils as k8s_utils

from dispatcher.local.paths import CLUSTER_DIR

ACCOUNT = "argo"
# Argo's install files for the controller's identity, relative to the module root.
_RBAC_DIR = "manifests/cluster-install-no-crds/workflow-controller-rbac"
RBAC_FILES = (
    "manifests/base/workflow-controller/workflow-controller-sa.yaml",
    f"{_RBAC_DIR}/workflow-controller-clusterrole.yaml",
    f"{_RBAC_DIR}/workflow-controller-clusterrolebinding.yaml",
    f"{_RBAC_DIR}/workflow-controller-role.yaml",
    f"{_RBAC_DIR}/workflow-controller-rolebinding.yaml",
)
TOKEN_SECONDS = 30 * 24 * 3600  # outlives any cluster a person leaves running


def _argo_version() -> str:
    for line in (CLUSTER_DIR / "versions.env").read_text().splitlines():
        if line.startswith("ARGO_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("ARGO_VERSION missing from servers/cluster/versions.env")


def module_dir() -> Path:
    """The argo-workflows module (downloaded through the Go proxy if the cache lacks it)."""
    module = f"github.com/argoproj/argo-workflows/v4@{_argo_version()}"
    proc = subprocess.run(
        ["go", "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=CLUSTER_DIR / "argolint",
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(f"go mod download {module}: {proc.stderr.strip()}") from exc
    if info.get("Error") or not info.get("Dir"):
        raise RuntimeError(f"go mod download {module}: {info.get('Error')}")
    return Path(info["Dir"])


def rbac_objects(namespace: str, share: Path | None = None) -> list[dict[str, Any]]:
    """Argo's objects, from build.sh's copy in `share/argo-rbac` (builds before it made that
    copy fall back to the module cache, downloading the module if needed)."""
    copied = share / "argo-rbac" if share is not None else None
    if copied is not None and copied.is_dir():
        paths = [copied / Path(name).name for name in RBAC_FILES]
    else:
        paths = [module_dir() / name for name in RBAC_FILES]
    objects = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
                doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
            objects.append(doc)
    return objects


def controller_kubeconfig(
    api_client: k8s.ApiClient,
    *,
    namespace: str,
    admin_kubeconfig: Path,
    path: Path,
    share: Path | None = None,
) -> Path:
    """Create Argo's RBAC in `namespace` and a kubeconfig holding the `argo` account's token."""
    for doc in rbac_objects(namespace, share):
        k8s_utils.create_from_dict(api_client, doc)
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": TOKEN_SECONDS},
    }
    answer = k8s.CoreV1Api(api_client).create_namespaced_service_account_token(
        ACCOUNT, namespace, request
    )
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "burst-test", "cluster": cluster}],
        "users": [{"name": f"{namespace}:{ACCOUNT}", "user": {"token": answer.status.token}}],
        "contexts": [
            {
                "name": "argo",
                "context": {
                    "cluster": "burst-test",
                    "user": f"{namespace}:{ACCOUNT}",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "argo",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
