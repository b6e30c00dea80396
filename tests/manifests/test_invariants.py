"""Invariants of the rendered overlays, per environment: the things review must not miss.

Security (non-root, read-only root, no capabilities, exact least-privilege RBAC), operability
(probes on the service's endpoints, a grace period longer than the drain, live-reloadable config)
and consistency between the dispatcher's config.yaml, the WorkflowTemplate and the GKE
infrastructure (every class's node pool exists with the taints and spot setting it needs, and
the pool's machine fits the class's requests; every subscription the dispatcher reads exists
with a dead-letter policy, is watched by KEDA and is readable by the identities that need it,
including the class topics and subscriptions of `pubsub.routing: class_topics`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from dispatcher.config import Settings, load_settings, parse_settings
from dispatcher.local import nodepools, nodes
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
# Least privilege, verb for verb (rbac.yaml explains each rule). The rehearsal
# (tests/integration/test_rehearsal.py) runs the dispatcher and the operator CLI as these roles
# on a real API server, so a verb missing here fails there.
DISPATCHER_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflows"],
        "verbs": ["create", "list", "watch"],
    },
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["create", "list", "patch", "delete"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get", "list", "watch", "create", "update", "delete"],
    },
]
OPERATOR_RULES = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["burst-dispatcher-config"],
        "verbs": ["get", "patch"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["burst-dispatcher-semaphores"],
        "verbs": ["get"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
]
# How each environment routes orders (docs/environments.md says why): a reviewed choice, like
# the RBAC verbs. class_topics needs the objects of k8s/components/class-topics and
# k8s/infra/components/class-topics; direct needs none of them.
ROUTING = {"dev": "direct", "staging": "class_topics", "prod": "class_topics"}
ROUTING_ANNOTATION = "burst-dispatcher.io/pubsub-routing"
PUBSUB_AGENT = re.compile(r"serviceAccount:service-[0-9]+@gcp-sa-pubsub\.iam\.gserviceaccount\.com")
DAY_SECONDS = 24 * 3600
# GKE's documented minimal node service account roles (artifactregistry.reader on the two
# repositories the overlays pull from, the rest on the project).
NODE_ROLES = {
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
}
WORKFLOW_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtaskresults"],
        "verbs": ["create", "patch"],
    },
]


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


def _seconds(duration: str) -> int:
    """A Config Connector duration such as `604800s`."""
    match = re.fullmatch(r"([0-9]+)s", duration)
    assert match, f"{duration}: expected whole seconds like 86400s"
    return int(match[1])


def _short(path: str, kind: str, env: str) -> str:
    """The resource name of a Pub/Sub path, which must lie in this environment's project."""
    prefix = f"projects/{_project(env)}/{kind}/"
    assert path.startswith(prefix), f"{path}: not a {kind} path in {_project(env)}"
    return path[len(prefix) :]


def _routed_classes(settings: Settings) -> list[str]:
    """Classes with a topic and subscription of their own: every class with class_topics,
    none with direct routing (which reads the intake subscription only)."""
    if settings.pubsub.routing == "class_topics":
        return [c.name for c in settings.classes]
    return []


def _read_subscriptions(settings: Settings) -> list[str]:
    """Every subscription path the dispatcher pulls: the intake, then one per routed class."""
    ps = settings.pubsub
    return [
        ps.subscription_path(),
        *(ps.class_subscription_path(c) for c in _routed_classes(settings)),
    ]


def _published_topics(settings: Settings) -> list[str]:
    """Topic paths in config.yaml the service publishes to: dead letters, and the class topics
    (routing and re-parking). The intake topic is not in config.yaml: see the IAM test."""
    ps = settings.pubsub
    return [
        ps.dead_letter_topic_path(),
        *(ps.class_topic_path(c) for c in _routed_classes(settings)),
    ]


def _member(infra: list[dict[str, Any]], spec: dict[str, Any]) -> str:
    """`member`, or the e-mail of the IAMServiceAccount that `memberFrom` names."""
    if "member" in spec:
        return str(spec["member"])
    (namespace,) = tools.find(infra, "Namespace")
    project = namespace["metadata"]["annotations"]["cnrm.cloud.google.com/project-id"]
    gsa = tools.one(infra, "IAMServiceAccount", spec["memberFrom"]["serviceAccountRef"]["name"])
    return f"serviceAccount:{gsa['metadata']['name']}@{project}.iam.gserviceaccount.com"


def _nodes(infra: list[dict[str, Any]]) -> str:
    return _member(infra, {"memberFrom": {"serviceAccountRef": {"name": "gke-nodes"}}})


def _grants(infra: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(member, role, resource kind, resource name) of every IAMPolicyMember."""
    return {
        (
            _member(infra, m["spec"]),
            m["spec"]["role"],
            m["spec"]["resourceRef"]["kind"],
            m["spec"]["resourceRef"].get("name") or m["spec"]["resourceRef"].get("external", ""),
        )
        for m in tools.find(infra, "IAMPolicyMember")
    }


def _dispatcher_member(app: list[dict[str, Any]]) -> str:
    ksa = tools.one(app, "ServiceAccount", "burst-dispatcher")
    return "serviceAccount:" + ksa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]


# --- the dispatcher's own objects -------------------------------------------------------------


def test_config_is_valid_and_names_this_environment(
    env: str, app: list[dict[str, Any]], settings: Settings
) -> None:
    assert settings.environment == env
    assert settings.pubsub.project == _project(env)
    assert settings.pubsub.routing == ROUTING[env]
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
    assert tools.one(app, "Role", "burst-dispatcher-operator")["rules"] == OPERATOR_RULES
    operators = tools.one(app, "RoleBinding", "burst-dispatcher-operator")
    assert operators["roleRef"]["name"] == "burst-dispatcher-operator"
    assert [s["kind"] for s in operators["subjects"]] == ["Group"]
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
    # Scrapes from the monitoring namespaces, and the API server's pod proxy (dispatcher
    # status) from the control plane's range: both to 8080 only.
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8080, 8080]
    control_plane = policy["egress"][2]["to"][1]["ipBlock"]["cidr"]  # the API server's range
    assert control_plane != "CONTROL_PLANE_CIDR"
    assert policy["ingress"][1]["from"] == [{"ipBlock": {"cidr": control_plane}}]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {53, 443} <= egress_ports
    assert egress_ports <= {53, 80, 443, 988}


def test_semaphores_back_up_every_class(app: list[dict[str, Any]], settings: Settings) -> None:
    data = tools.one(app, "ConfigMap", "burst-dispatcher-semaphores")["data"]
    assert set(data) == {c.name for c in settings.classes}
    for size_class in settings.classes:
        assert int(data[size_class.name]) >= size_class.max_live_workflows, size_class.name


def test_autoscaling_watches_every_subscription_the_dispatcher_reads(
    app: list[dict[str, Any]], settings: Settings
) -> None:
    # With class_topics the router drains the intake at once and the backlog waits in the
    # class subscriptions: a trigger on the intake alone would hardly ever see a burst.
    scaled = tools.one(app, "ScaledObject", "burst-dispatcher")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "burst-dispatcher"
    triggers = scaled["spec"]["triggers"]
    watched = [t["metadata"]["subscriptionName"] for t in triggers]
    assert sorted(watched) == sorted(_read_subscriptions(settings))
    names = [t["name"] for t in triggers]
    assert len(set(names)) == len(names), f"trigger names must be unique: {names}"
    intake = triggers[names.index("intake")]
    assert intake["metadata"]["subscriptionName"] == settings.pubsub.subscription_path()
    for trigger in triggers:
        assert trigger["type"] == "gcp-pubsub"
        assert trigger["metadata"]["mode"] == "SubscriptionSize"
        assert trigger["metadata"]["value"] == intake["metadata"]["value"], trigger["name"]
        tools.one(app, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    # KEDA owns the replica count: a `replicas` in the manifest fights it on every apply.
    assert "replicas" not in _deployment(app)["spec"]


def test_routing_change_rolls_the_deployment(app: list[dict[str, Any]], settings: Settings) -> None:
    # pubsub.routing is read at start only; naming it in the pod template makes the apply that
    # changes it roll the pods (k8s/components/class-topics). No annotation means direct.
    template = _deployment(app)["spec"]["template"]["metadata"]
    routing = template.get("annotations", {}).get(ROUTING_ANNOTATION, "direct")
    assert routing == settings.pubsub.routing


def test_example_config_names_the_same_pubsub_resources(env: str, settings: Settings) -> None:
    example = load_settings(tools.REPO / "config" / f"{env}.yaml", environ={}).pubsub
    fields = (
        "project",
        "subscription",
        "dead_letter_topic",
        "routing",
        "class_topic",
        "class_subscription",
    )
    assert {f: getattr(example, f) for f in fields} == {
        f: getattr(settings.pubsub, f) for f in fields
    }


def test_no_placeholder_survives(app: list[dict[str, Any]], infra: list[dict[str, Any]]) -> None:
    text = repr(app) + repr(infra)
    for placeholder in ("PROJECT_ID", "PROJECT_NUMBER", "local-project", "CONTROL_PLANE_CIDR"):
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
            assert pool["spec"]["autoscaling"]["totalMinNodeCount"] == 0, "batch pools scale to 0"
            assert pool["spec"]["autoscaling"]["totalMaxNodeCount"] >= 1


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


# What GKE's own DaemonSets (kube-proxy, fluentbit, gke-metrics-agent, pdcsi-node, ...) request
# on every node, on top of the reservation that allocatable already leaves out: a few hundred
# millicores and about half a GiB, depending on version and add-ons. Rounded up so a class that
# passes here still packs on a node with more add-ons.
DAEMONSET_CPU = 0.4
DAEMONSET_MEMORY = 0.5 * 2**30


def _pods_per_node(machine: str, *, cpu: float, memory: float) -> int:
    shape = nodepools.machine_type(machine)
    free_cpu = nodes.allocatable_cpu_millis(shape.cpus) / 1000 - DAEMONSET_CPU
    free_memory = nodes.allocatable_memory_ki(shape.memory_gib) * 2**10 - DAEMONSET_MEMORY
    return min(int(free_cpu // cpu), int(free_memory // memory))


def test_spot_classes_pack_several_pods_per_node(
    infra: list[dict[str, Any]], settings: Settings
) -> None:
    # A request just over half a node's free share runs one pod per node and pays for two
    # (measured: 2 vCPU medium pods on e2-standard-4, one node each; docs/performance.md).
    pools = _pools(infra)
    for size_class in (c for c in settings.classes if c.spot):
        for pool_name in {size_class.node_pool, size_class.fallback_node_pool or ""} - {""}:
            machine = pools[pool_name]["spec"]["nodeConfig"]["machineType"]
            per_node = _pods_per_node(
                machine, cpu=_quantity(size_class.cpu), memory=_quantity(size_class.memory)
            )
            assert per_node >= 2, f"{size_class.name} on {pool_name} ({machine}): {per_node}"


def test_non_batch_workloads_have_an_untainted_pool(infra: list[dict[str, Any]]) -> None:
    untainted = [p for p in _pools(infra).values() if not _taints(p)]
    assert untainted, "the dispatcher, Argo and KEDA need a pool without batch taints"
    assert all(p["spec"]["autoscaling"]["totalMinNodeCount"] >= 1 for p in untainted)


def test_pool_sizes_count_the_whole_regional_pool(infra: list[dict[str, Any]]) -> None:
    # The cluster is regional: per-zone min/max would triple every ceiling (and keep one system
    # node per zone on). Only whole-pool counts, and every pool runs as the node identity.
    (cluster,) = tools.find(infra, "ContainerCluster")
    assert cluster["spec"]["location"].count("-") == 1, "a region, not a zone"
    for name, pool in _pools(infra).items():
        autoscaling = pool["spec"]["autoscaling"]
        assert not {"minNodeCount", "maxNodeCount"} & set(autoscaling), name
        assert autoscaling["totalMinNodeCount"] <= 1, f"{name}: at most one node always on"
        assert pool["spec"]["nodeConfig"]["serviceAccountRef"] == {"name": "gke-nodes"}, name
    node_roles = {role for member, role, *_ in _grants(infra) if member.startswith(_nodes(infra))}
    assert node_roles == NODE_ROLES


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


def _check_dispatcher_subscription(
    infra: list[dict[str, Any]], name: str, settings: Settings, env: str
) -> dict[str, Any]:
    """What every subscription the dispatcher pulls needs; returns its spec."""
    topics = {t["metadata"]["name"] for t in tools.find(infra, "PubSubTopic")}
    spec: dict[str, Any] = tools.one(infra, "PubSubSubscription", name)["spec"]
    assert spec["topicRef"]["name"] in topics, name
    dead_letter = _short(settings.pubsub.dead_letter_topic_path(), "topics", env)
    assert dead_letter in topics
    policy = spec["deadLetterPolicy"]
    assert policy["deadLetterTopicRef"]["name"] == dead_letter, name
    assert 5 <= policy["maxDeliveryAttempts"] <= 100, name
    assert set(spec["retryPolicy"]) == {"minimumBackoff", "maximumBackoff"}, name
    assert 10 <= spec["ackDeadlineSeconds"] <= 600, name
    # A burst waits here behind the class caps; a day is the least it may have to wait.
    assert _seconds(spec["messageRetentionDuration"]) >= DAY_SECONDS, name
    assert spec["expirationPolicy"] == {"ttl": ""}, f"{name}: quiet weeks must not delete it"
    return spec


def test_pubsub_names_agree_with_config_and_template(
    env: str, app: list[dict[str, Any]], infra: list[dict[str, Any]], settings: Settings
) -> None:
    topics = {t["metadata"]["name"] for t in tools.find(infra, "PubSubTopic")}
    intake = _short(settings.pubsub.subscription_path(), "subscriptions", env)
    _check_dispatcher_subscription(infra, intake, settings, env)
    results = _param(_template(app), "results-topic")
    assert results.startswith(f"projects/{_project(env)}/topics/")
    assert results.rsplit("/", 1)[1] in topics


def test_every_routed_class_has_its_topic_and_subscription(
    env: str, infra: list[dict[str, Any]], settings: Settings
) -> None:
    # Direct routing has no routed classes: nothing to require (dev).
    ps = settings.pubsub
    for size_class in _routed_classes(settings):
        topic = _short(ps.class_topic_path(size_class), "topics", env)
        tools.one(infra, "PubSubTopic", topic)
        name = _short(ps.class_subscription_path(size_class), "subscriptions", env)
        spec = _check_dispatcher_subscription(infra, name, settings, env)
        assert spec["topicRef"]["name"] == topic, f"{name} must read {topic}"
        # Backpressure spends no attempts on a class subscription (undelivered backlog,
        # re-parking): only real failures do, and a high threshold would only hide them.
        assert spec["deadLetterPolicy"]["maxDeliveryAttempts"] <= 20, name


def test_pubsub_iam_covers_what_the_dispatcher_reads_and_writes(
    env: str, app: list[dict[str, Any]], infra: list[dict[str, Any]], settings: Settings
) -> None:
    grants = _grants(infra)
    dispatcher = _dispatcher_member(app)
    for path in _read_subscriptions(settings):
        name = _short(path, "subscriptions", env)
        assert (dispatcher, "roles/pubsub.subscriber", "PubSubSubscription", name) in grants, name
    for path in _published_topics(settings):
        name = _short(path, "topics", env)
        assert (dispatcher, "roles/pubsub.publisher", "PubSubTopic", name) in grants, name
    # Readiness calls get_subscription on the intake subscription (subscriber does not allow it).
    intake = _short(settings.pubsub.subscription_path(), "subscriptions", env)
    assert (dispatcher, "roles/pubsub.viewer", "PubSubSubscription", intake) in grants
    # Direct routing re-parks onto the intake's topic; `dead-letter replay` publishes there too.
    topic = tools.one(infra, "PubSubSubscription", intake)["spec"]["topicRef"]["name"]
    assert (dispatcher, "roles/pubsub.publisher", "PubSubTopic", topic) in grants, topic


def test_pubsub_agent_can_forward_every_dead_letter_policy(infra: list[dict[str, Any]]) -> None:
    grants = _grants(infra)
    agents = {member for member, *_ in grants if PUBSUB_AGENT.fullmatch(member)}
    assert len(agents) == 1, f"one Pub/Sub service agent per project, got {sorted(agents)}"
    (agent,) = agents
    for subscription in tools.find(infra, "PubSubSubscription"):
        policy = subscription["spec"].get("deadLetterPolicy")
        if policy is None:
            continue
        name = subscription["metadata"]["name"]
        topic = policy["deadLetterTopicRef"]["name"]
        assert (agent, "roles/pubsub.publisher", "PubSubTopic", topic) in grants, topic
        assert (agent, "roles/pubsub.subscriber", "PubSubSubscription", name) in grants, name


def test_iam_grants_name_existing_resources(infra: list[dict[str, Any]]) -> None:
    declared = {(o["kind"], o["metadata"]["name"]) for o in infra}
    for member in tools.find(infra, "IAMPolicyMember"):
        ref = member["spec"]["resourceRef"]
        if "name" in ref:
            assert (ref["kind"], ref["name"]) in declared, member["metadata"]["name"]


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
        who = _member(infra, member["spec"])
        assert _project(env) in who or "gcp-sa-pubsub" in who


def test_what_the_app_needs_is_declared(
    env: str, app: list[dict[str, Any]], infra: list[dict[str, Any]]
) -> None:
    """Work bucket with the Workflow identity's access, a subscription on the results topic,
    the image repositories the overlay pulls from, the cluster's network, Config Connector's
    context for the namespace."""
    wft = _template(app)
    bucket = _param(wft, "work-prefix").removeprefix("gs://").split("/")[0]
    (declared,) = tools.find(infra, "StorageBucket")
    assert declared["spec"]["resourceID"] == bucket
    workflow = f"serviceAccount:burst-dispatcher-workflow@{_project(env)}.iam.gserviceaccount.com"
    grants = _grants(infra)
    name = declared["metadata"]["name"]
    assert (workflow, "roles/storage.objectUser", "StorageBucket", name) in grants
    results = _param(wft, "results-topic").rsplit("/", 1)[1]
    assert any(
        s["spec"]["topicRef"]["name"] == results for s in tools.find(infra, "PubSubSubscription")
    ), f"nothing reads {results}: the smoke test and operators would see no outcome"
    repositories = {r["metadata"]["name"] for r in tools.find(infra, "ArtifactRegistryRepository")}
    prefix = f"europe-west1-docker.pkg.dev/{_project(env)}/"
    images = [
        c["image"]
        for o in app
        for c in _containers(o)
        if c.get("image", "").startswith("europe-west1-docker.pkg.dev/")
    ]
    assert images
    for image in images:
        assert image.startswith(prefix), image
        assert image.removeprefix(prefix).split("/")[0] in repositories, image
    (cluster,) = tools.find(infra, "ContainerCluster")
    assert cluster["spec"]["networkRef"]["name"] in {
        n["metadata"]["name"] for n in tools.find(infra, "ComputeNetwork")
    }
    (context,) = tools.find(infra, "ConfigConnectorContext")
    assert context["metadata"]["name"] == "configconnectorcontext.core.cnrm.cloud.google.com"
    assert context["spec"]["googleServiceAccount"].endswith(
        f"@{_project(env)}.iam.gserviceaccount.com"
    )


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers of a Deployment's pod template and of every WorkflowTemplate template."""
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]["spec"]
        return [*pod.get("initContainers", []), *pod["containers"]]
    if obj["kind"] == "WorkflowTemplate":
        return [t["container"] for t in obj["spec"]["templates"] if "container" in t]
    return []


def test_every_class_has_scratch_space_that_fits_its_nodes(
    infra: list[dict[str, Any]], app: list[dict[str, Any]], settings: Settings
) -> None:
    import json

    sizes = json.loads(_param(_template(app), "scratch-sizes"))
    assert set(sizes) == {c.name for c in settings.classes}, "scratch-sizes: one entry per class"
    pools = _pools(infra)
    for size_class in settings.classes:
        for pool_name in {
            size_class.node_pool,
            size_class.fallback_node_pool or size_class.node_pool,
        }:
            disk_gb = pools[pool_name]["spec"]["nodeConfig"].get("diskSizeGb", 100)
            # GKE keeps about a third of a small boot disk for the system and images.
            assert _quantity(sizes[size_class.name]) <= disk_gb * 1e9 * 0.6, (
                f"{size_class.name} scratch on {pool_name}"
            )


def test_managed_prometheus_scrapes_the_dispatcher(app: list[dict[str, Any]]) -> None:
    (monitor,) = tools.find(app, "PodMonitoring")
    pod = _deployment(app)["spec"]["template"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items(), "selects the dispatcher's pods"
    ports = {
        p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])
    }
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
