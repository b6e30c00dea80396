"""The Workflow admission policy on the real API server: hand-made pods are refused.

Why: creating a Workflow is creating pods. Argo lets a Workflow's arguments override the
template's `image-*` defaults and splices `cpu`/`memory` into a podSpecPatch (see
tests/manifests/test_cluster_hostile.py for the controller doing so). The policy in
k8s/base/workflow-admission.yaml must refuse those Workflows and admit exactly what the
dispatcher renders. It runs here under a unique name, bound to a unique namespace, so the
shared test cluster's other tests never meet it.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from dispatcher.core.batching import Batch
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order import Order, OrderInput
from dispatcher.core.render import render_workflow
from tests.cluster.plugin import K8sCluster
from tests.unit.helpers import settings as make_settings

pytestmark = pytest.mark.cluster

POLICY_FILE = "k8s/base/workflow-admission.yaml"
GROUP, VERSION = "argoproj.io", "v1alpha1"
TIMEOUT = 60.0


def _repo_file(path: str) -> list[dict[str, Any]]:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / path).read_text()
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def guarded(k8s_cluster: K8sCluster) -> Iterator[tuple[k8s.CustomObjectsApi, str]]:
    """A fresh namespace bound to a uniquely named copy of the repo's policy."""
    suffix = uuid.uuid4().hex[:8]
    ns, name = f"bd-adm-{suffix}", f"bd-adm-{suffix}"
    policy, binding = copy.deepcopy(_repo_file(POLICY_FILE))
    policy["metadata"]["name"] = binding["metadata"]["name"] = name
    binding["spec"]["policyName"] = name
    binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] = {
        "kubernetes.io/metadata.name": ns
    }
    with k8s_cluster.api_client() as api:
        core, adm = k8s.CoreV1Api(api), k8s.AdmissionregistrationV1Api(api)
        core.create_namespace({"metadata": {"name": ns}})
        adm.create_validating_admission_policy(policy)
        adm.create_validating_admission_policy_binding(binding)
        try:
            yield k8s.CustomObjectsApi(api), ns
        finally:
            adm.delete_validating_admission_policy_binding(name)
            adm.delete_validating_admission_policy(name)
            core.delete_namespace(ns)


def dispatcher_workflow(ns: str) -> dict[str, Any]:
    """A Workflow exactly as the dispatcher renders it (default config)."""
    cfg = make_settings()
    order = Order(order_id="adm-1", input=OrderInput(uri="gs://in/adm-1", size_bytes=10))
    ticket = Classifier(cfg).ticket(order, now=0.0, receipt=0)
    assert isinstance(ticket, Ticket)
    body = render_workflow(Batch(ticket.size_class, (ticket,), 0.0), settings=cfg)
    body["metadata"]["namespace"] = ns
    return body


def create(custom: k8s.CustomObjectsApi, ns: str, body: dict[str, Any]) -> ApiException | None:
    """Server-side dry run: admission runs in full, nothing is stored or started."""
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "workflows", body, dry_run="All")
    except ApiException as exc:
        return exc
    return None


def with_argument(body: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    params = changed["spec"]["arguments"]["parameters"]
    params[:] = [p for p in params if p["name"] != name] + [{"name": name, "value": value}]
    return changed


def refused(custom: k8s.CustomObjectsApi, ns: str, body: dict[str, Any]) -> ApiException:
    """The refusal, polled until the new policy is in force (the server syncs it lazily)."""
    deadline = time.monotonic() + TIMEOUT
    while (error := create(custom, ns, body)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"policy did not refuse within {TIMEOUT:.0f}s: {body['spec']}")
        time.sleep(0.2)
    return error


INJECTION = '1"\nvolumes: [{name: stolen, secret: {secretName: victim}}]\nhostname: "x'


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda b: with_argument(b, "image-process", "evil.example/miner:1"), "arguments"),
        (lambda b: with_argument(b, "results-topic", "projects/x/topics/forged"), "arguments"),
        (lambda b: with_argument(b, "cpu", INJECTION), "cpu and memory"),
        (lambda b: with_argument(b, "memory", "1Gi\n    volumeMounts: []"), "cpu and memory"),
        (lambda b: with_argument(b, "node-pool", "default-pool"), "node pools"),
        (lambda b: with_argument(b, "orders", '[{"order_id":"{{workflow.name}}"}]'), "template"),
        (lambda b: b | {"spec": b["spec"] | {"podSpecPatch": "hostNetwork: true"}}, "spec may"),
        (lambda b: b | {"spec": b["spec"] | {"serviceAccountName": "burst-dispatcher"}}, "spec"),
        (lambda b: b | {"spec": b["spec"] | {"workflowTemplateRef": {"name": "other"}}}, "Ref"),
    ],
)
def test_hand_made_workflows_are_refused(
    guarded: tuple[k8s.CustomObjectsApi, str], change: Any, needle: str
) -> None:
    custom, ns = guarded
    error = refused(custom, ns, change(dispatcher_workflow(ns)))
    assert error.status in {403, 422}, error
    assert needle in str(error.body), error.body


def test_the_dispatchers_own_workflow_is_admitted(
    guarded: tuple[k8s.CustomObjectsApi, str],
) -> None:
    custom, ns = guarded
    bad = with_argument(dispatcher_workflow(ns), "image-qc", "evil.example/x:1")
    refused(custom, ns, bad)  # the policy is in force now
    assert create(custom, ns, dispatcher_workflow(ns)) is None
