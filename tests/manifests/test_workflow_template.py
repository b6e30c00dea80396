"""The order-pipeline WorkflowTemplate honours the dispatcher's Workflow contract.

Pure checks on the file (no cluster): which parameters the dispatcher must send, that nothing
declares outputs (which hang forever on kwok and cost API writes in production), that retries end
on the on-demand pool, that skipped optional steps do not block their dependants, and that the
exit handler gets what `dispatcher report` needs. Argo's own validator runs in test_cluster.py.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.core.render import WORKFLOW_PARAMETERS
from tests.manifests import tools

TEMPLATE_FILE = tools.REPO / "workflow_templates" / "order-pipeline.yaml"
# What the dispatcher puts into every Workflow's spec.arguments (one list, in render.py).
CONTRACT_PARAMETERS = set(WORKFLOW_PARAMETERS)
POOL_LABEL = "cloud.google.com/gke-nodepool"


@pytest.fixture(scope="module")
def wft() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(TEMPLATE_FILE.read_text())
    return doc


def _templates(wft: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in wft["spec"]["templates"]}


def _walk_keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [k for k, v in node.items() for k in [k, *_walk_keys(v)]]
    if isinstance(node, list):
        return [k for item in node for k in _walk_keys(item)]
    return []


def test_no_template_declares_outputs(wft: dict[str, Any]) -> None:
    for template in wft["spec"]["templates"]:
        assert "outputs" not in _walk_keys(template), f"template {template['name']} has outputs"


def test_contract_parameters_are_required_and_the_rest_have_defaults(wft: dict[str, Any]) -> None:
    params = wft["spec"]["arguments"]["parameters"]
    required = {p["name"] for p in params if "value" not in p}
    assert required == CONTRACT_PARAMETERS
    assert len({p["name"] for p in params}) == len(params), "duplicate parameter"


def test_dispatcher_golden_workflows_send_exactly_the_contract(wft: dict[str, Any]) -> None:
    # The dispatcher's own rendering golden files (tests/golden) are the other side of the contract.
    goldens = sorted((tools.REPO / "tests" / "golden").glob("workflow-*.yaml"))
    if not goldens:
        pytest.skip("no dispatcher golden Workflows in tests/golden")
    for path in goldens:
        body = yaml.safe_load(path.read_text())
        assert set(body["spec"]) == {"workflowTemplateRef", "arguments"}, path.name
        assert body["spec"]["workflowTemplateRef"]["name"] == wft["metadata"]["name"]
        sent = {p["name"] for p in body["spec"]["arguments"]["parameters"]}
        assert sent == CONTRACT_PARAMETERS, path.name
        assert all(isinstance(p["value"], str) for p in body["spec"]["arguments"]["parameters"])


def test_every_referenced_workflow_parameter_is_declared(wft: dict[str, Any]) -> None:
    text = TEMPLATE_FILE.read_text()
    declared = {p["name"] for p in wft["spec"]["arguments"]["parameters"]}
    referenced = set(re.findall(r"workflow\.parameters\.([A-Za-z0-9-]+)", text))
    referenced |= set(re.findall(r"workflow\.parameters\['([A-Za-z0-9-]+)'\]", text))
    assert referenced, "no references found: the regexes are stale"
    assert referenced <= declared, f"undeclared: {sorted(referenced - declared)}"


def test_every_template_input_reference_is_declared(wft: dict[str, Any]) -> None:
    for template in wft["spec"]["templates"]:
        declared = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        used = set(re.findall(r"inputs\.parameters\.([A-Za-z0-9-]+)", yaml.safe_dump(template)))
        assert used <= declared, f"{template['name']}: undeclared inputs {used - declared}"


def test_operational_settings_live_in_the_template(wft: dict[str, Any]) -> None:
    spec = wft["spec"]
    assert spec["serviceAccountName"] == "burst-dispatcher-workflow"
    assert 0 < spec["activeDeadlineSeconds"] <= 86400
    assert spec["podGC"]["strategy"] in {"OnPodSuccess", "OnPodCompletion"}
    assert spec["ttlStrategy"]["secondsAfterSuccess"] > 0
    assert spec["ttlStrategy"]["secondsAfterFailure"] > 0
    assert spec["podPriorityClassName"] == "burst-dispatcher-batch"
    assert spec["onExit"] in _templates(wft)
    semaphores = spec["synchronization"]["semaphores"]
    assert semaphores == [
        {
            "configMapKeyRef": {
                "name": "burst-dispatcher-semaphores",
                "key": "{{workflow.parameters.size-class}}",
            }
        }
    ]


def test_fan_out_over_the_orders_without_fail_fast(wft: dict[str, Any]) -> None:
    main = _templates(wft)[wft["spec"]["entrypoint"]]
    assert main["failFast"] is False, "one failing order must not stop the others"
    (task,) = main["dag"]["tasks"]
    assert task["withParam"] == "{{workflow.parameters.orders}}"


def _optional_steps() -> dict[str, bool]:
    config = yaml.safe_load((tools.K8S / "base" / "config.yaml").read_text())
    steps: dict[str, bool] = config["optional_steps"]
    return steps


def test_pipeline_order_and_optional_steps(wft: dict[str, Any]) -> None:
    templates = _templates(wft)
    tasks = {t["name"]: t for t in templates["order"]["dag"]["tasks"]}
    chain = ["fetch-input", "validate", "process", "enrich", "qc", "publish-output"]
    assert list(tasks) == chain
    optional = _optional_steps()
    assert set(optional) == {"enrich", "qc"}
    fan_out = templates["main"]["dag"]["tasks"][0]["arguments"]["parameters"]
    passed = {p["name"]: p["value"] for p in fan_out}
    for step in optional:
        # The item carries step_<name> (the dispatcher applied the default); `when` reads it.
        assert passed[f"step-{step}"] == f"{{{{item.step_{step}}}}}"
        assert tasks[step]["when"] == f"{{{{inputs.parameters.step-{step}}}}} == true"
    for previous, task in itertools.pairwise(chain):
        depends = tasks[task]["depends"]
        if previous in optional:
            # A skipped optional step must not stop the chain; a failed one must.
            assert depends == f"{previous}.Succeeded || {previous}.Skipped"
        else:
            assert depends == previous  # plain name = Succeeded (or Skipped/Daemoned) in Argo
    for name in chain:
        assert tasks[name]["template"] == "step"
        args = {p["name"]: p["value"] for p in tasks[name]["arguments"]["parameters"]}
        assert args["step"] == name
        assert args["image"] == f"{{{{workflow.parameters.image-{name}}}}}"


_EXPR = re.compile(
    r"^\{\{=asInt\(retries\) >= (\d+) \? workflow\.parameters\['([a-z-]+)'\] : "
    r"workflow\.parameters\['([a-z-]+)'\]\}\}$"
)


def _pool_for_attempt(selector: str, retries: int) -> str:
    match = _EXPR.match(selector.strip())
    assert match, f"unexpected nodeSelector expression: {selector!r}"
    threshold, fallback, primary = int(match[1]), match[2], match[3]
    return fallback if retries >= threshold else primary


def test_last_retry_moves_to_the_on_demand_pool(wft: dict[str, Any]) -> None:
    step = _templates(wft)["step"]
    strategy = step["retryStrategy"]
    limit = int(strategy["limit"])
    assert limit >= 1
    # Preemption is an Error (pod deleted / node gone), a broken input a Failure: retry both.
    assert strategy["retryPolicy"] == "Always"
    assert strategy["backoff"]["duration"] and int(strategy["backoff"]["factor"]) >= 2
    assert set(step["nodeSelector"]) == {POOL_LABEL}
    selector = step["nodeSelector"][POOL_LABEL]
    pools = [_pool_for_attempt(selector, attempt) for attempt in range(limit + 1)]
    assert pools == ["node-pool"] * limit + ["fallback-node-pool"]


def _backoffs(wft: dict[str, Any], template: str) -> list[float]:
    """The waits before each retry of ``template`` at the default `retry-backoff`, as Argo
    computes them: duration * factor^(retry - 1)."""
    strategy = _templates(wft)[template]["retryStrategy"]
    params = {p["name"]: p.get("value") for p in wft["spec"]["arguments"]["parameters"]}
    duration = strategy["backoff"]["duration"].replace(
        "{{workflow.parameters.retry-backoff}}", params["retry-backoff"]
    )
    base = float(duration.removesuffix("s"))
    factor = int(strategy["backoff"]["factor"])
    return [base * factor**n for n in range(int(strategy["limit"]))]


def test_a_preempted_step_retries_soon_a_broken_one_slowly(wft: dict[str, Any]) -> None:
    # Argo's wait cannot depend on the cause (one schedule per retryStrategy), so the schedule
    # starts short (a preemption rarely strikes one step twice) and grows (a broken input
    # fails every attempt): docs/performance.md, "A whole swarm".
    waits = _backoffs(wft, "step")
    assert waits[0] <= 10
    assert sum(waits) >= 90
    # The exit handler keeps minutes of retries for an outage of Pub/Sub or the API server.
    assert sum(_backoffs(wft, "report")) >= 300


def test_steps_tolerate_spot_and_batch_taints(wft: dict[str, Any]) -> None:
    tolerations = _templates(wft)["step"]["tolerations"]
    keys = {(t["key"], t.get("value"), t["effect"]) for t in tolerations}
    assert ("cloud.google.com/gke-spot", "true", "NoSchedule") in keys
    assert ("burst-dispatcher.io/batch", "true", "NoSchedule") in keys


def test_resources_come_from_the_arguments(wft: dict[str, Any]) -> None:
    step = _templates(wft)["step"]
    patch = yaml.safe_load(step["podSpecPatch"])
    (container,) = patch["containers"]
    assert container["name"] == "main"  # Argo's name for a container template's container
    requests = container["resources"]["requests"]
    scratch = "{{=jsonpath(workflow.parameters['scratch-sizes'], '$.' + workflow.parameters['size-class'])}}"
    assert requests == {
        "cpu": "{{workflow.parameters.cpu}}",
        "memory": "{{workflow.parameters.memory}}",
        "ephemeral-storage": scratch,
    }
    assert container["resources"]["limits"]["ephemeral-storage"] == scratch
    assert patch["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": scratch}}]


def test_long_steps_keep_every_retry(wft: dict[str, Any]) -> None:
    # backoff.maxDuration counts from the first attempt: a step preempted after running longer
    # than it would get no retry, and never reach the on-demand pool.
    for template in wft["spec"]["templates"]:
        backoff = template.get("retryStrategy", {}).get("backoff", {})
        assert "maxDuration" not in backoff, template["name"]


def test_step_pods_are_not_evicted_to_pack_nodes(wft: dict[str, Any]) -> None:
    annotations = _templates(wft)["step"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def test_steps_write_only_to_their_scratch_volume(wft: dict[str, Any]) -> None:
    step = _templates(wft)["step"]
    container = step["container"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert wft["spec"]["securityContext"]["runAsUser"] == 65532
    assert step["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SCRATCH_DIR"] == env["TMPDIR"] == "/scratch"


def test_exit_handler_runs_dispatcher_report(wft: dict[str, Any]) -> None:
    report = _templates(wft)[wft["spec"]["onExit"]]
    container = report["container"]
    assert container["image"] == "{{workflow.parameters.image-dispatcher}}"
    assert container["command"] == ["dispatcher"]
    args = container["args"]
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "report"
    # Constant-size argv: nothing that grows with the batch (Linux refuses one argv string of
    # 128 KiB or more); the exit handler reads its Workflow from the API server instead.
    assert pairs == {
        "--workflow": "{{workflow.name}}",
        "--namespace": "{{workflow.namespace}}",
        "--status": "{{workflow.status}}",
        "--topic": "{{workflow.parameters.results-topic}}",
    }
    assert "orders" not in json.dumps(container) and "failures" not in json.dumps(container)
    # Its own identity: the only one that may read Workflows and publish results.
    assert report["serviceAccountName"] == "burst-dispatcher-report"
    # The report must not be lost to a spot preemption.
    assert report["nodeSelector"] == {POOL_LABEL: "{{workflow.parameters.fallback-node-pool}}"}
    assert report["retryStrategy"]["retryPolicy"] == "Always"


def test_containers_name_their_command(wft: dict[str, Any]) -> None:
    # Without a command Argo looks the entrypoint up in the image registry (and fails on a
    # private one it cannot authenticate to: seen on the test cluster).
    for template in wft["spec"]["templates"]:
        if "container" in template:
            assert template["container"].get("command"), template["name"]


def test_containers_are_locked_down(wft: dict[str, Any]) -> None:
    assert wft["spec"]["securityContext"]["runAsNonRoot"] is True
    for template in wft["spec"]["templates"]:
        if "container" not in template:
            continue
        context = template["container"]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]


def test_expression_parser_rejects_a_swapped_selector() -> None:
    # The checker itself must be able to fail: the pools swapped is wrong.
    swapped = (
        "{{=asInt(retries) >= 3 ? workflow.parameters['node-pool'] : "
        "workflow.parameters['fallback-node-pool']}}"
    )
    assert _pool_for_attempt(swapped, 3) == "node-pool"
    with pytest.raises(AssertionError):
        _pool_for_attempt("small-spot", 0)


def test_template_file_is_the_one_in_the_kustomization() -> None:
    listed = yaml.safe_load((TEMPLATE_FILE.parent / "kustomization.yaml").read_text())["resources"]
    assert Path(TEMPLATE_FILE.name).name in listed
