"""Invariants of the rendered overlays, per environment: the things review must not miss.

Security (non-root, read-only root, no capabilities, exact least-privilege RBAC), operability
(probes on the service's endpoints, a grace period longer than the drain, live-reloadable config)
and consistency between the dispatcher's config.yaml, the WorkflowTemplate and the GKE
infrastructure (every class's node pool exists with the taints and spot setting it needs, and
the pool's machine fits the class's requests).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from dispatcher.config import Settings, parse_settings
from tests.manifests import tools

POOL_LABEL = "cloud.google.com/gke-nodepool"
SPOT_TAINT = ("cloud.google.com/gke-spot", "true", "NO_SCHEDULE")
BATCH_TAINT = ("burst-dispatcher.io/batch", "true", "NO_SCHEDULE")
# vCPU and GiB of the machine types the pools use; an unknown type fails the fit check.
MACHINES = {
    "e2-standard-2": (2, 8),
    "e2-standard-4": (4, 16),
    "e2-standard-8": (8, 32),
    "n2-standard-8": (8, 32),
    "n2-standard-16": (16, 64),
    "n2-highmem-16": (16, 128),
}
# Least privilege, verb for verb (rbac.yaml explains each rule).
DISPATCHER_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflows"],
        "verbs": ["create", "get", "list", "watch"],
    },
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get", "list"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["burst-dispatcher-config"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "list", "create", "update", "delete"],
    },
]
WORKFLOW_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtaskresults"],
        "verbs": ["create", "patch"],
    },
]


def _render(name: str) -> list[dict[str, Any]]:
    try:
        return tools.render(tools.OVERLAYS[name])
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


@pytest.fixture(scope="module", params=tools.ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def app(env: str) -> list[dict[str, Any]]:
    return _render(env)


@pytest.fixture(scope="module")
def infra(env: str) -> list[dict[str, Any]]:
    return _render(f"infra-{env}")


@pytest.fixture(scope="module")
def settings(app: list[dict[str, Any]]) -> Settings:
    config_map = tools.one(app, "ConfigMap", "burst-dispatcher-config")
    return parse_settings(config_map["data"]["config.yaml"], source="configmap", environ={})


def _deployment(app: list[dict[str, Any]]) -> dict[str, Any]:
    return tools.one(app, "Deployment", "burst-dispatcher")


def _template(app: list[dict[str, Any]]) -> dict[str, Any]:
    return tools.one(app, "WorkflowTemplate", "order-pipeline")


def _param(wft: dict[str, Any], name: str) -> str:
    (value,) = [p["value"] for p in wft["spec"]["arguments"]["parameters"] if p["name"] == name]
    return str(value)


def _project(env: str) -> str:
    return f"acme-orders-{env}"


def _taints(pool: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (t["key"], t["value"], t["effect"]) for t in pool["spec"]["nodeConfig"].get("taint", [])
    }


def _quantity(value: str) -> float:
    units = {
        "m": 1e-3,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
    }
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value)
    assert match, value
    return float(match[1]) * units.get(match[2], 1)


# --- the dispatcher's own objects -------------------------------------------------------------


def test_config_is_valid_and_names_this_environment(
    env: str, app: list[dict[str, Any]], settings: Settings
) -> None:
    assert settings.environment == env
    assert settings.pubsub.project == _project(env)
    namespaces = {o["metadata"].get("namespace") for o in app} - {None}
    assert namespaces == {settings.namespace}
    for size_class in settings.classes:
        tools.one(app, "WorkflowTemplate", size_class.template)


def test_pod_is_non_root_and_locked_down(app: list[dict[str, Any]]) -> None:
    pod = _deployment(app)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert not context.get("privileged", False)
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert set(container["resources"]["limits"]) >= {"memory"}


def test_probes_and_metrics_port(app: list[dict[str, Any]], settings: Settings) -> None:
    (container,) = _deployment(app)["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.service.http_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = tools.one(app, "Service", "burst-dispatcher")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_command_reads_the_mounted_live_config(app: list[dict[str, Any]]) -> None:
    pod = _deployment(app)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert [*container["command"], *container["args"]] == [
        "dispatcher",
        "run",
        "--config",
        "/etc/burst-dispatcher/config.yaml",
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/burst-dispatcher"]
    # A subPath mount is never updated by the kubelet: live reload needs the directory mount.
    assert "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "burst-dispatcher-config"


def test_grace_period_covers_the_drain(app: list[dict[str, Any]], settings: Settings) -> None:
    grace = _deployment(app)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 60
    assert grace >= settings.service.drain_seconds + 10, "no margin for the final acks and exit"


def test_rbac_is_exactly_least_privilege(app: list[dict[str, Any]]) -> None:
    assert not tools.find(app, "ClusterRole") and not tools.find(app, "ClusterRoleBinding")
    assert tools.one(app, "Role", "burst-dispatcher")["rules"] == DISPATCHER_RULES
    assert tools.one(app, "Role", "burst-dispatcher-workflow")["rules"] == WORKFLOW_RULES
    for name in ("burst-dispatcher", "burst-dispatcher-workflow"):
        binding = tools.one(app, "RoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": "burst-dispatcher"}
        ]
    assert _deployment(app)["spec"]["template"]["spec"]["serviceAccountName"] == "burst-dispatcher"


def test_images_are_pinned(app: list[dict[str, Any]]) -> None:
    images = [c["image"] for c in _deployment(app)["spec"]["template"]["spec"]["containers"]]
    images += [
        p["value"]
        for p in _template(app)["spec"]["arguments"]["parameters"]
        if p["name"].startswith("image-")
    ]
    assert len(images) == 8
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" in name, f"{image}: no registry"
        assert tag and tag != "latest" and "/" not in tag, f"{image}: not pinned"
    assert _param(_template(app), "image-dispatcher") == images[0]


def test_pdb_and_network_policy_select_the_dispatcher(app: list[dict[str, Any]]) -> None:
    labels = _deployment(app)["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        obj = tools.one(app, kind, "burst-dispatcher")
        selector = obj["spec"]["selector" if kind == "PodDisruptionBudget" else "podSelector"]
        assert selector["matchLabels"].items() <= labels.items()
    policy = tools.one(app, "NetworkPolicy", "burst-dispatcher")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8080]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {53, 443} <= egress_ports
    assert egress_ports <= {53, 80, 443, 988}


def test_semaphores_back_up_every_class(app: list[dict[str, Any]], settings: Settings) -> None:
    data = tools.one(app, "ConfigMap", "burst-dispatcher-semaphores")["data"]
    assert set(data) == {c.name for c in settings.classes}
    for size_class in settings.classes:
        assert int(data[size_class.name]) >= size_class.max_live_workflows, size_class.name


def test_autoscaling_watches_this_subscription(
    app: list[dict[str, Any]], settings: Settings
) -> None:
    scaled = tools.one(app, "ScaledObject", "burst-dispatcher")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "burst-dispatcher"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "gcp-pubsub"
    assert trigger["metadata"]["subscriptionName"] == settings.pubsub.subscription_path()
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    replicas = _deployment(app)["spec"]["replicas"]
    assert scaled["spec"]["minReplicaCount"] <= replicas <= scaled["spec"]["maxReplicaCount"]
    tools.one(app, "TriggerAuthentication", trigger["authenticationRef"]["name"])


def test_no_placeholder_survives(app: list[dict[str, Any]], infra: list[dict[str, Any]]) -> None:
    text = repr(app) + repr(infra)
    for placeholder in ("PROJECT_ID", "PROJECT_NUMBER", "local-project"):
        assert placeholder not in text


# --- the dispatcher's config against the GKE infrastructure --------------------------------


def _pools(infra: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in tools.find(infra, "ContainerNodePool")}


def test_every_class_pool_exists_with_matching_spot_and_taints(
    app: list[dict[str, Any]], infra: list[dict[str, Any]], settings: Settings
) -> None:
    pools = _pools(infra)
    wft = _template(app)
    (step,) = [t for t in wft["spec"]["templates"] if t["name"] == "step"]
    tolerated = {
        (t["key"], t["value"], "NO_SCHEDULE")
        for t in step["tolerations"]
        if t["effect"] == "NoSchedule"
    }
    for size_class in settings.classes:
        fallback = size_class.fallback_node_pool or size_class.node_pool
        for pool_name, spot in ((size_class.node_pool, size_class.spot), (fallback, False)):
            assert pool_name in pools, f"class {size_class.name}: no ContainerNodePool {pool_name}"
            pool = pools[pool_name]
            assert pool["spec"]["nodeConfig"].get("spot", False) is spot, pool_name
            assert (SPOT_TAINT in _taints(pool)) is spot, f"{pool_name}: spot taint must match spot"
            assert BATCH_TAINT in _taints(pool), f"{pool_name}: batch pools keep others off"
            assert _taints(pool) <= tolerated, f"{pool_name}: the template cannot land there"
            assert pool["spec"]["autoscaling"]["minNodeCount"] == 0, "batch pools scale to zero"
            assert pool["spec"]["autoscaling"]["maxNodeCount"] >= 1


def test_class_requests_fit_the_pool_machines(
    infra: list[dict[str, Any]], settings: Settings
) -> None:
    pools = _pools(infra)
    for size_class in settings.classes:
        for pool_name in {
            size_class.node_pool,
            size_class.fallback_node_pool or size_class.node_pool,
        }:
            machine = pools[pool_name]["spec"]["nodeConfig"]["machineType"]
            assert machine in MACHINES, f"unknown machine type {machine}: add it to MACHINES"
            cpus, gib = MACHINES[machine]
            # GKE keeps back a share of every node (about 6-25% of memory on small machines).
            assert _quantity(size_class.cpu) <= cpus * 0.9, f"{size_class.name} on {pool_name}"
            assert _quantity(size_class.memory) <= gib * 2**30 * 0.75, (
                f"{size_class.name} on {pool_name}"
            )


def test_non_batch_workloads_have_an_untainted_pool(infra: list[dict[str, Any]]) -> None:
    untainted = [p for p in _pools(infra).values() if not _taints(p)]
    assert untainted, "the dispatcher, Argo and KEDA need a pool without batch taints"
    assert all(p["spec"]["autoscaling"]["minNodeCount"] >= 1 for p in untainted)


def test_cluster_profile_and_workload_identity(env: str, infra: list[dict[str, Any]]) -> None:
    (cluster,) = tools.find(infra, "ContainerCluster")
    spec = cluster["spec"]
    assert spec["clusterAutoscaling"]["autoscalingProfile"] == "OPTIMIZE_UTILIZATION"
    assert spec["workloadIdentityConfig"]["workloadPool"] == f"{_project(env)}.svc.id.goog"
    for pool in _pools(infra).values():
        assert pool["spec"]["clusterRef"]["name"] == cluster["metadata"]["name"]
        assert pool["spec"]["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"
    (namespace,) = tools.find(infra, "Namespace")
    assert namespace["metadata"]["annotations"]["cnrm.cloud.google.com/project-id"] == _project(env)


def test_pubsub_names_agree_with_config_and_template(
    env: str, app: list[dict[str, Any]], infra: list[dict[str, Any]], settings: Settings
) -> None:
    topics = {t["metadata"]["name"] for t in tools.find(infra, "PubSubTopic")}
    subscription = tools.one(infra, "PubSubSubscription", settings.pubsub.subscription)["spec"]
    assert settings.pubsub.dead_letter_topic in topics
    policy = subscription["deadLetterPolicy"]
    assert policy["deadLetterTopicRef"]["name"] == settings.pubsub.dead_letter_topic
    assert 5 <= policy["maxDeliveryAttempts"] <= 100
    assert subscription["topicRef"]["name"] in topics
    assert subscription["expirationPolicy"] == {"ttl": ""}, "quiet weeks must not delete it"
    results = _param(_template(app), "results-topic")
    assert results.startswith(f"projects/{_project(env)}/topics/")
    assert results.rsplit("/", 1)[1] in topics


def test_workload_identity_bindings_match_the_service_accounts(
    env: str, app: list[dict[str, Any]], infra: list[dict[str, Any]]
) -> None:
    gsas = {g["metadata"]["name"] for g in tools.find(infra, "IAMServiceAccount")}
    members = {
        m["spec"]["resourceRef"].get("name"): m["spec"]["member"]
        for m in tools.find(infra, "IAMPolicyMember")
        if m["spec"]["role"] == "roles/iam.workloadIdentityUser"
    }
    for ksa in tools.find(app, "ServiceAccount"):
        email = ksa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        gsa, _, domain = email.partition("@")
        assert domain == f"{_project(env)}.iam.gserviceaccount.com"
        assert gsa in gsas
        expected = f"serviceAccount:{_project(env)}.svc.id.goog[burst-dispatcher/{ksa['metadata']['name']}]"
        assert members[gsa] == expected
    for member in tools.find(infra, "IAMPolicyMember"):
        assert (
            _project(env) in member["spec"]["member"] or "gcp-sa-pubsub" in member["spec"]["member"]
        )
