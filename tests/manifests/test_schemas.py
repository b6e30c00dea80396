"""Field names of the custom resources we cannot dry-run everywhere, checked against their schemas.

KEDA objects are checked against KEDA's own CRDs, read from the Go module cache (version pinned in
versions.env). Config Connector objects are checked against the field tree of
@kubernetes-models/gke (generated from Config Connector's CRDs), because the Go module proxy does
not serve the Config Connector module. Both checks catch the mistake a YAML parser cannot: a
misspelt or misplaced field that the API server would reject (or silently prune).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.manifests import tools

KCC_KINDS = {
    "ContainerCluster",
    "ContainerNodePool",
    "PubSubTopic",
    "PubSubSubscription",
    "IAMServiceAccount",
    "IAMPolicyMember",
}


@pytest.fixture(scope="module")
def keda_crds() -> list[dict[str, Any]]:
    try:
        return tools.keda_crds()
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


def _render(name: str) -> list[dict[str, Any]]:
    try:
        return tools.render(tools.OVERLAYS[name])
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
def test_keda_objects_match_the_keda_crds(env: str, keda_crds: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in _render(env):
        if not obj["apiVersion"].startswith("keda.sh/"):
            continue
        schema = tools.crd_schema(keda_crds, obj["apiVersion"], obj["kind"])
        errors = list(tools.schema_errors(obj, schema))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"
        checked += 1
    assert checked == 2  # ScaledObject + TriggerAuthentication


def test_keda_schema_check_can_fail(keda_crds: list[dict[str, Any]]) -> None:
    schema = tools.crd_schema(keda_crds, "keda.sh/v1alpha1", "ScaledObject")
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "d"}, "minReplicas": 1, "triggers": [{}]},
    }
    errors = list(tools.schema_errors(bad, schema))
    assert ".spec.minReplicas: unknown field" in errors
    assert ".spec.triggers[0].type: required" in errors


@pytest.fixture(scope="module")
def kcc_available() -> None:
    try:
        tools.kcc_models_dir()
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
@pytest.mark.usefixtures("kcc_available")
def test_config_connector_fields_exist(env: str) -> None:
    kinds = set()
    for obj in _render(f"infra-{env}"):
        if obj["kind"] not in KCC_KINDS:
            continue
        tree = tools.kcc_field_tree(obj["apiVersion"], obj["kind"])
        unknown = list(tools.unknown_fields(obj.get("spec", {}), tree["spec"], "spec"))
        assert not unknown, f"{obj['kind']}/{obj['metadata']['name']}: unknown {unknown}"
        kinds.add(obj["kind"])
    assert kinds == KCC_KINDS


@pytest.mark.usefixtures("kcc_available")
def test_config_connector_check_can_fail() -> None:
    tree = tools.kcc_field_tree("container.cnrm.cloud.google.com/v1beta1", "ContainerNodePool")
    spec = {
        "autoscaling": {"minNodeCount": 0},
        "nodeConfig": {"spott": True, "taint": [{"efect": "NO_SCHEDULE"}]},
    }
    assert list(tools.unknown_fields(spec, tree["spec"], "spec")) == [
        "spec.nodeConfig.spott",
        "spec.nodeConfig.taint[0].efect",
    ]
