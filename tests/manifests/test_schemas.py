"""Field names of the custom resources we cannot dry-run everywhere, checked against their schemas.

KEDA objects are checked against KEDA's own CRDs, read from the Go module cache (version pinned in
versions.env). Config Connector objects are checked against Config Connector's real CRDs in
../shared/crds/ (the Go module proxy does not serve that module); test_cluster.py also dry-runs
them on the API server, this check runs without a cluster. Both checks catch the mistake a YAML parser cannot: a
misspelt or misplaced field that the API server would reject (or silently prune).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.manifests import tools
from tests.manifests.crd_schema import crd_schema, schema_errors

# Every Config Connector kind the infra overlays declare (all of them in every environment).
KCC_KINDS = {
    "ConfigConnectorContext",
    "ComputeNetwork",
    "ComputeSubnetwork",
    "ContainerCluster",
    "ContainerNodePool",
    "ArtifactRegistryRepository",
    "StorageBucket",
    "PubSubTopic",
    "PubSubSubscription",
    "IAMServiceAccount",
    "IAMPolicyMember",
    "MonitoringAlertPolicy",
    "MonitoringDashboard",
}


@pytest.fixture(scope="module")
def keda_crds() -> list[dict[str, Any]]:
    try:
        return tools.keda_crds()
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
def test_keda_objects_match_the_keda_crds(env: str, keda_crds: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in tools.rendered(env):
        if not obj["apiVersion"].startswith("keda.sh/"):
            continue
        schema = crd_schema(keda_crds, obj["apiVersion"], obj["kind"])
        errors = list(schema_errors(obj, schema))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"
        checked += 1
    assert checked == 2  # ScaledObject + TriggerAuthentication


def test_keda_schema_check_can_fail(keda_crds: list[dict[str, Any]]) -> None:
    schema = crd_schema(keda_crds, "keda.sh/v1alpha1", "ScaledObject")
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "d"}, "minReplicas": 1, "triggers": [{}]},
    }
    errors = list(schema_errors(bad, schema))
    assert ".spec.minReplicas: unknown field" in errors
    assert ".spec.triggers[0].type: required" in errors


@pytest.fixture(scope="module")
def kcc_crds() -> list[dict[str, Any]]:
    try:
        return list(tools.kcc_crds())
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
def test_config_connector_objects_match_the_real_crds(
    env: str, kcc_crds: list[dict[str, Any]]
) -> None:
    kinds = set()
    for obj in tools.rendered(f"infra-{env}"):
        if not obj["apiVersion"].endswith(".cnrm.cloud.google.com/v1beta1"):
            continue
        schema = crd_schema(kcc_crds, obj["apiVersion"], obj["kind"])
        errors = list(schema_errors(obj, schema))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"
        kinds.add(obj["kind"])
    assert kinds == KCC_KINDS


def test_config_connector_check_can_fail(kcc_crds: list[dict[str, Any]]) -> None:
    schema = crd_schema(kcc_crds, "container.cnrm.cloud.google.com/v1beta1", "ContainerNodePool")
    bad = {
        "spec": {
            "clusterRef": {"name": "c"},
            "location": "europe-west1",
            "autoscaling": {"totalMaxNodeCount": "3"},
            "nodeConfig": {
                "spott": True,
                "taint": [{"key": "k", "value": "v", "efect": "NO_SCHEDULE"}],
            },
        }
    }
    assert list(schema_errors(bad, schema)) == [
        ".spec.autoscaling.totalMaxNodeCount: expected integer, got str",
        ".spec.nodeConfig.spott: unknown field",
        ".spec.nodeConfig.taint[0].effect: required",
        ".spec.nodeConfig.taint[0].efect: unknown field",
    ]
