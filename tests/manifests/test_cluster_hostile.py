"""Hostile orders against the real Argo controller (issue 9), on the e2e harness.

- Argo's template engine does substitute text inside order data: a hand-made Workflow whose
  item holds `{{workflow.parameters.orders}}` gives that order's pod every co-batched order.
  The dispatcher's intake refuses such an order, so no Workflow it creates can carry one.
- A sample of fuzzed orders the intake accepts (quotes, braces, `$(...)`, odd Unicode, big
  numbers) is rendered by `dispatcher plan`, passes argolint, runs on the real controller, and
  every step pod sees exactly its own order: `ORDER` is its item, `WORK_URI` ends in its hash.
- Without the admission policy, Argo itself lets a Workflow's arguments choose the image
  (tests/cluster/test_admission.py shows the policy refusing it).
"""

from __future__ import annotations

import copy
import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.core.classify import Classifier, work_key
from dispatcher.core.order import Order, OrderInput, Reason, Rejection, parse_order
from dispatcher.core.render import WORKFLOW_PARAMETERS
from tests.manifests import tools
from tests.manifests.test_cluster import (
    E2E,
    E2E_KINDS,
    _apply,
    _argolint,
    _e2e_objects,
    _e2e_variant,
    _order,
    _plan_workflows,
    _summary,
)
from tests.unit.helpers import settings as make_settings

pytestmark = pytest.mark.cluster

RUN_LABEL = "burst-dispatcher.test/run"
FUZZ_SEED = 9
FUZZ_ORDERS = 6
ODD = ["{", "}", "{ {", "} }", "$(HOME)", "$$", '"', "\\", "<&>", "\u2028", "ß", "注", "🙂", " "]


@pytest.fixture(scope="module")
def e2e(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """test_cluster.py's harness, with a template of its own name: parallel sessions on the
    shared cluster re-apply `order-pipeline-e2e` from their own branches."""
    try:
        cluster = request.getfixturevalue("k8s_cluster")
    except pytest.FixtureLookupError:
        pytest.skip("k8s_cluster fixture not loaded (run without --noconftest)")
    kubectl = tools.built_kubectl()
    run_id = uuid.uuid4().hex[:10]
    docs = _e2e_objects(cluster.namespace, run_id)
    for obj in docs:
        if obj["kind"] == "WorkflowTemplate":
            obj["metadata"]["name"] = f"order-pipeline-hostile-{run_id}"
    _apply(kubectl, cluster.kubeconfig, docs, dry_run=False)
    harness = E2E(cluster, tmp_path_factory.mktemp("hostile"), run_id)
    try:
        yield harness
    finally:
        selector = f"{RUN_LABEL}={run_id}"
        for plural in ("workflows", "workflowtemplates"):
            harness.custom.delete_collection_namespaced_custom_object(
                "argoproj.io", "v1alpha1", harness.namespace, plural, label_selector=selector
            )
        harness.api.close()


def _env(pod: Any) -> dict[str, str]:
    (main,) = [c for c in pod.spec.containers if c.name == "main"]
    return {e.name: e.value for e in main.env or []}


def _step_pods(e2e: E2E, name: str) -> list[Any]:
    return [p for n, p in e2e.pods(name).items() if ".onExit" not in n]


def _wait_for_pods(e2e: E2E, name: str, count: int) -> list[Any]:
    """The step pods of a finished Workflow (at least ``count``)."""
    wf = e2e.wait(name)
    pods = _step_pods(e2e, name)
    assert len(pods) >= count, _summary(wf)
    return pods


@pytest.mark.parametrize(
    "payload",
    [
        "{{workflow.parameters.orders}}",
        "{{=jsonpath(workflow.parameters.orders, '$[0].order_id')}}",
        "{{=sprig.trunc(40, workflow.parameters.orders)}}",
    ],
)
def test_an_order_cannot_read_another_orders_data_through_template_substitution(
    e2e: E2E, payload: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    victim, attacker = f"victim-{suffix}", f"attacker-{suffix}"
    hostile = _order(attacker) | {"params": {"x": payload}}
    # The defence: the dispatcher never lets such an order into a Workflow.
    rejection = parse_order(json.dumps(hostile).encode(), {}, max_bytes=1 << 20)
    assert isinstance(rejection, Rejection) and rejection.reason is Reason.SCHEMA
    # Why it is needed: the same batch built by hand (intake bypassed) leaks on the real
    # controller: the attacker's pod receives the victim's order through substitution.
    classifier = Classifier(make_settings())
    items = [
        classifier.item_json(
            Order.model_construct(
                order_id=oid,
                input=OrderInput(uri=f"gs://e2e/{oid}", size_bytes=1024),
                steps={},
                priority=0,
                params=params,
                schema_version=1,
            )
        )
        for oid, params in ((victim, {}), (attacker, hostile["params"]))
    ]
    (body,) = _plan_workflows(
        e2e.tmp / uuid.uuid4().hex, tools.OVERLAYS["dev"] / "config.yaml", [_order(victim)]
    )
    for param in body["spec"]["arguments"]["parameters"]:
        if param["name"] == "orders":
            param["value"] = "[" + ",".join(items) + "]"
    body["metadata"]["name"] = f"bd-leak-{suffix}"
    name = _submit_body(e2e, body)
    wf = e2e.wait(name)
    pods = _step_pods(e2e, name)
    leaked = [p for p in pods if _env(p).get("ORDER_ID") == attacker and victim in _env(p)["ORDER"]]
    victim_ran = any(_env(p).get("ORDER_ID") == victim for p in pods)
    # Either the attacker reads the victim's data, or the substituted text breaks the batch's
    # JSON and the victim never runs: both cross from one order into another.
    assert leaked or (wf["status"]["phase"] == "Error" and not victim_ran), _summary(wf)


def _submit_body(e2e: E2E, body: dict[str, Any]) -> str:
    body["spec"]["workflowTemplateRef"]["name"] = f"order-pipeline-hostile-{e2e.run_id}"
    body["metadata"]["namespace"] = e2e.namespace
    body["metadata"]["labels"][RUN_LABEL] = e2e.run_id
    e2e.custom.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", e2e.namespace, "workflows", body
    )
    return str(body["metadata"]["name"])


def _fuzzed_orders(seed: int, count: int) -> list[dict[str, Any]]:
    """Orders made of awkward text, kept only where the intake accepts them."""
    rng = random.Random(seed)
    orders: list[dict[str, Any]] = []
    while len(orders) < count:
        text = "".join(rng.choice(ODD) for _ in range(rng.randint(1, 12)))
        order_id = f"fz{seed}-{len(orders)}-" + "".join(rng.choice("ßä注x.:_@") for _ in range(4))
        params = {
            "text": text,
            text: [rng.randint(-(2**63), 2**63 - 1), rng.random() * 1e300, None, True],
            "nested": {"deep": [{"k": text[::-1]}]},
        }
        order = _order(order_id) | {"params": params, "priority": rng.randint(-5, 5)}
        if isinstance(parse_order(json.dumps(order).encode(), {}, max_bytes=1 << 20), Order):
            orders.append(order)
    return orders


def test_fuzzed_valid_orders_pass_argolint_and_reach_their_pods_exactly(
    e2e: E2E, tmp_path: Path
) -> None:
    orders = _fuzzed_orders(FUZZ_SEED, FUZZ_ORDERS)
    (body,) = _plan_workflows(tmp_path / "plan", tools.OVERLAYS["dev"] / "config.yaml", orders)
    # Argo's own validation, offline, against the real template
    template = next(
        o for o in tools.render(tools.OVERLAYS["dev"]) if o["kind"] == "WorkflowTemplate"
    )
    lint = tmp_path / "lint.yaml"
    lint.write_text(yaml.safe_dump_all([template, body]))
    result = _argolint(lint)
    assert result.returncode == 0, result.stderr
    items = {i["order_id"]: i for i in json.loads(_argument(body, "orders"))}
    name = _submit_body(e2e, body)
    wf = e2e.wait(name)
    assert wf["status"]["phase"] == "Succeeded", _summary(wf)
    pods = _step_pods(e2e, name)
    assert len(pods) == FUZZ_ORDERS * 5  # enrich is off by default
    for pod in pods:
        env = _env(pod)
        own = items[env["ORDER_ID"]]
        assert json.loads(env["ORDER"]) == own
        assert env["WORK_URI"].endswith(f"/{name}/{work_key(own['order_id'])}")


def _argument(body: dict[str, Any], name: str) -> str:
    (value,) = [p["value"] for p in body["spec"]["arguments"]["parameters"] if p["name"] == name]
    return str(value)


def test_without_the_admission_policy_argo_lets_arguments_choose_the_image(e2e: E2E) -> None:
    suffix = uuid.uuid4().hex[:8]
    (body,) = _plan_workflows(
        e2e.tmp / uuid.uuid4().hex, tools.OVERLAYS["dev"] / "config.yaml", [_order(f"img-{suffix}")]
    )
    assert {p["name"] for p in body["spec"]["arguments"]["parameters"]} == set(WORKFLOW_PARAMETERS)
    body["spec"]["arguments"]["parameters"].append(
        {"name": "image-process", "value": "evil.example/miner:1"}
    )
    name = _submit_body(e2e, body)
    pods = _wait_for_pods(e2e, name, 5)
    images = {c.image for p in pods for c in p.spec.containers if c.name == "main"}
    assert "evil.example/miner:1" in images


def test_the_dispatchers_workflow_runs_to_the_end_under_the_admission_policy(
    e2e: E2E, tmp_path: Path
) -> None:
    """The policy also judges every UPDATE: the controller's own writes must pass it."""
    from kubernetes import client

    suffix = uuid.uuid4().hex[:8]
    ns = f"bd-adm-run-{suffix}"
    policy, binding = [
        d for d in yaml.safe_load_all((tools.K8S / "base" / "workflow-admission.yaml").read_text())
    ]
    policy["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = ns
    binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] = {
        "kubernetes.io/metadata.name": ns
    }
    core, adm = client.CoreV1Api(e2e.api), client.AdmissionregistrationV1Api(e2e.api)
    core.create_namespace({"metadata": {"name": ns}})
    adm.create_validating_admission_policy(policy)
    adm.create_validating_admission_policy_binding(binding)
    try:
        docs = []
        for obj in tools.render(tools.OVERLAYS["dev"]):
            if obj["kind"] not in E2E_KINDS or obj["kind"] == "PriorityClass":
                continue
            if obj["metadata"]["name"] == "burst-dispatcher-config":
                continue
            obj = copy.deepcopy(obj)
            if obj["kind"] == "WorkflowTemplate":
                obj = _e2e_variant(obj, ns, e2e.run_id)
                obj["metadata"]["name"] = "order-pipeline"  # the name the policy admits
            obj["metadata"]["namespace"] = ns
            for subject in obj.get("subjects", []):
                subject["namespace"] = ns
            docs.append(obj)
        kubectl = tools.cluster_bin("kubectl")
        assert kubectl is not None
        _apply(kubectl, e2e.kubeconfig, docs, dry_run=False)
        (body,) = _plan_workflows(
            tmp_path / "plan", tools.OVERLAYS["dev"] / "config.yaml", [_order(f"adm-{suffix}")]
        )
        body["metadata"]["namespace"] = ns
        custom = client.CustomObjectsApi(e2e.api)
        bad = copy.deepcopy(body)
        bad["spec"]["arguments"]["parameters"].append({"name": "image-qc", "value": "x.example/y"})
        bad["metadata"]["name"] += "-bad"
        _until_refused(custom, ns, bad)
        custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", ns, "workflows", body)
        e2e.namespace, home = ns, e2e.namespace
        try:
            wf = e2e.wait(str(body["metadata"]["name"]))
        finally:
            e2e.namespace = home
        assert wf["status"]["phase"] == "Succeeded", _summary(wf)
    finally:
        adm.delete_validating_admission_policy_binding(ns)
        adm.delete_validating_admission_policy(ns)
        core.delete_namespace(ns)


def _until_refused(custom: Any, ns: str, body: dict[str, Any]) -> None:
    """Poll (dry run) until the new policy is in force; the server picks it up lazily."""
    from kubernetes.client.rest import ApiException

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            custom.create_namespaced_custom_object(
                "argoproj.io", "v1alpha1", ns, "workflows", body, dry_run="All"
            )
        except ApiException as exc:
            if exc.status in {403, 422}:
                return
            raise
        time.sleep(0.2)
    pytest.fail("the admission policy never came into force")
