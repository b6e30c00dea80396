"""Least privilege in the rendered manifests of every environment (issue 9).

The admission policy must admit every Workflow the environment's own config can produce (its
pools, cpu and memory shapes) and nothing wider; no NetworkPolicy opens egress to the whole
internet; Workflow pods have a policy that selects them; only the exit handler's identity reads
Workflows. tests/cluster/test_admission.py runs the same policy on a real API server.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from dispatcher.config import Settings, parse_settings
from dispatcher.core.render import WORKFLOW_PARAMETERS
from tests.manifests import tools

POLICY = "burst-dispatcher-workflows"


def _settings(app: list[dict[str, Any]]) -> Settings:
    config_map = tools.one(app, "ConfigMap", "burst-dispatcher-config")
    return parse_settings(config_map["data"]["config.yaml"], source="configmap", environ={})


def _policy_text(app: list[dict[str, Any]]) -> str:
    policy = tools.one(app, "ValidatingAdmissionPolicy", POLICY)["spec"]
    return " ".join(
        [v["expression"] for v in policy["variables"]]
        + [v["expression"] for v in policy["validations"]]
    )


def _variable(app: list[dict[str, Any]], name: str) -> list[str]:
    policy = tools.one(app, "ValidatingAdmissionPolicy", POLICY)["spec"]
    (expression,) = [v["expression"] for v in policy["variables"] if v["name"] == name]
    value: list[str] = ast.literal_eval(expression)
    return value


def _regex_after(text: str, key: str) -> re.Pattern[str]:
    match = re.search(rf"p\[0\] != '{key}' \|\| p\[1\]\.matches\('((?:[^'\\]|\\.)*)'\)", text)
    assert match, f"no regex for {key}"
    return re.compile(match.group(1).replace("\\\\", "\\"))


def test_admission_policy_admits_exactly_what_config_can_send(app: list[dict[str, Any]]) -> None:
    settings = _settings(app)
    text = _policy_text(app)
    pools = set(_variable(app, "pools"))
    assert set(_variable(app, "templates")) == {c.template for c in settings.classes}
    cpu, memory = _regex_after(text, "cpu"), _regex_after(text, "memory")
    for size_class in settings.classes:
        assert {size_class.node_pool, size_class.fallback_node_pool or ""} - {""} <= pools
        assert cpu.fullmatch(size_class.cpu), size_class.cpu
        assert memory.fullmatch(size_class.memory), size_class.memory
    for injection in ['1"\n  volumes: [{name: x, secret: {secretName: y}}]', "1 ", "1e3"]:
        assert not cpu.fullmatch(injection) and not memory.fullmatch(injection)
    for name in WORKFLOW_PARAMETERS:
        assert f"'{name}'" in text
    assert "image-" not in text


def test_admission_policy_binds_the_dispatchers_namespace(app: list[dict[str, Any]]) -> None:
    binding = tools.one(app, "ValidatingAdmissionPolicyBinding", POLICY)["spec"]
    assert binding["validationActions"] == ["Deny"]
    namespace = tools.one(app, "Deployment", "burst-dispatcher")["metadata"]["namespace"]
    selector = binding["matchResources"]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": namespace}


def test_no_network_policy_opens_egress_to_everywhere(app: list[dict[str, Any]]) -> None:
    policies = tools.find(app, "NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} >= {
        "burst-dispatcher",
        "burst-dispatcher-workflow-pods",
    }
    for policy in policies:
        for rule in policy["spec"]["egress"]:
            for peer in rule.get("to", []):
                cidr = peer.get("ipBlock", {}).get("cidr", "")
                assert cidr and not cidr.endswith("/0"), (policy["metadata"]["name"], cidr)
                assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", cidr), cidr
    assert "CONTROL_PLANE_CIDR" not in repr(policies)


def test_workflow_pods_are_selected_and_get_no_ingress(app: list[dict[str, Any]]) -> None:
    template = tools.one(app, "WorkflowTemplate", "order-pipeline")
    pod_labels = template["spec"]["podMetadata"]["labels"]
    policy = tools.one(app, "NetworkPolicy", "burst-dispatcher-workflow-pods")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy["ingress"] == []


def test_only_the_exit_handler_reads_workflows_and_publishes_results(
    app: list[dict[str, Any]],
) -> None:
    template = tools.one(app, "WorkflowTemplate", "order-pipeline")
    by_name = {t["name"]: t for t in template["spec"]["templates"]}
    report = by_name[template["spec"]["onExit"]]
    assert report["serviceAccountName"] == "burst-dispatcher-report"
    assert template["spec"]["serviceAccountName"] == "burst-dispatcher-workflow"
    assert all("serviceAccountName" not in t for n, t in by_name.items() if n != "report")
    role = tools.one(app, "Role", "burst-dispatcher-report")
    reads = [r for r in role["rules"] if "workflows" in r["resources"]]
    assert reads == [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]}]
    step_role = tools.one(app, "Role", "burst-dispatcher-workflow")
    assert all("workflows" not in r["resources"] for r in step_role["rules"])


def test_only_the_exit_handlers_gcp_identity_may_publish_results(env: str) -> None:
    infra = tools.rendered(f"infra-{env}")
    publishers = [
        m["spec"]["member"]
        for m in tools.find(infra, "IAMPolicyMember")
        if m["spec"]["role"] == "roles/pubsub.publisher"
        and m["spec"]["resourceRef"]["name"] == "order-results"
    ]
    assert len(publishers) == 1 and "burst-dispatcher-report@" in publishers[0]
