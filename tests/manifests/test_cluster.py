"""The manifests against real Kubernetes and Argo: validator, server-side dry-run, end to end.

- argolint (Argo's own validation package, built by servers/cluster/build.sh) accepts every
  rendered WorkflowTemplate together with the Workflows `dispatcher plan --render` produces, and
  rejects a broken template (so the check can fail).
- Every app overlay passes a server-side dry-run apply with strict field validation on the test
  cluster, with Argo's CRDs (installed by the cluster tool) and KEDA's (installed here from the
  Go module cache); so does every infra overlay, with Config Connector's real CRDs
  (../shared/crds, installed here).
- End to end on kwok nodes shaped like the GKE pools: the dispatcher's own rendered Workflows run
  the real template to Succeeded on the class's pool with optional steps skipped as asked; a
  failing order fails alone and the exit handler reports it; a preempted step is retried, and a
  step preempted on every attempt makes its last attempt on the on-demand pool.

The e2e tests use a copy of the rendered dev template, changed only where a test needs it (see
`_e2e_variant`): kwok fault annotations on the step template, 1 s retry backoff, no podGC (so
the pods can be inspected). The Workflows are exactly what the dispatcher renders, pointed at
that copy.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.manifests import tools

GROUP, VERSION = "argoproj.io", "v1alpha1"
FINISHED = {"Succeeded", "Failed", "Error"}
RUN_LABEL = "burst-dispatcher.test/run"
POOL_LABEL = "cloud.google.com/gke-nodepool"
E2E_TEMPLATE = "order-pipeline-e2e"
E2E_KINDS = {
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "PriorityClass",
    "ConfigMap",
    "WorkflowTemplate",
}
WORKFLOW_TIMEOUT = 180.0


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Any:
    """The cluster plugin's `k8s_cluster` (tests/cluster/plugin.py), when it is loaded."""
    try:
        return request.getfixturevalue("k8s_cluster")
    except pytest.FixtureLookupError:
        pytest.skip("k8s_cluster fixture not loaded (run without --noconftest)")


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return tools.built_kubectl()


def _run(
    args: list[str], stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def _apply(kubectl: Path, kubeconfig: str, docs: list[dict[str, Any]], *, dry_run: bool) -> str:
    args = [
        str(kubectl),
        f"--kubeconfig={kubeconfig}",
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=burst-dispatcher-tests",
        "-f",
        "-",
    ]
    if dry_run:
        args.append("--dry-run=server")
    proc = _run(args, stdin=yaml.safe_dump_all(docs))
    assert proc.returncode == 0, f"kubectl apply failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def keda_crds_installed(cluster: Any, kubectl: Path) -> None:
    try:
        crds = [*tools.keda_crds(), tools.podmonitoring_crd()]
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))
    tools.install_crds(kubectl, cluster.kubeconfig, crds)


# --- Argo's validator --------------------------------------------------------------------------


def _dispatcher() -> list[str]:
    venv = tools.REPO / ".venv" / "bin" / "dispatcher"
    return [str(venv)] if venv.is_file() else ["dispatcher"]


def _plan_workflows(tmp: Path, config: Path, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the dispatcher would create for these orders (`dispatcher plan --render`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    source = tmp / "orders.jsonl"
    source.write_text("".join(json.dumps(o) + "\n" for o in orders))
    out = tmp / "rendered"
    proc = _run(
        [*_dispatcher(), "plan", "--config", str(config), "--render", str(out), str(source)]
    )
    assert proc.returncode == 0, proc.stderr
    bodies = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    assert bodies, f"dispatcher plan rendered nothing:\n{proc.stdout}"
    return bodies


def _order(order_id: str, size: int = 1024, **steps: bool) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_id": order_id,
        "input": {"uri": f"gs://e2e/{order_id}", "size_bytes": size},
    }
    if steps:
        order["steps"] = steps
    return order


def _argolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = tools.cluster_bin("argolint")
    if binary is None:
        tools.unavailable("argolint not built: bash servers/cluster/build.sh")
    return _run([str(binary), str(path)])


@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
def test_argolint_accepts_templates_and_rendered_workflows(env: str, tmp_path: Path) -> None:
    objs = tools.render(tools.OVERLAYS[env])
    templates = tools.find(objs, "WorkflowTemplate")
    config = tools.OVERLAYS[env] / "config.yaml"
    workflows = _plan_workflows(
        tmp_path,
        config,
        [
            _order("lint-small-1"),
            _order("lint-small-2", enrich=True, qc=False),
            _order("lint-medium", size=2 * 1024**3),
            _order("lint-large", size=8 * 1024**3),
        ],
    )
    assert {w["metadata"]["labels"]["burst-dispatcher.io/size-class"] for w in workflows} == {
        "small",
        "medium",
        "large",
    }
    target = tmp_path / "lint.yaml"
    target.write_text(yaml.safe_dump_all([*templates, *workflows]))
    proc = _argolint(target)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.count(": ok") == len(templates) + len(workflows)


def test_argolint_rejects_a_broken_template(tmp_path: Path) -> None:
    (template,) = tools.find(tools.render(tools.OVERLAYS["dev"]), "WorkflowTemplate")
    broken = copy.deepcopy(template)
    step = next(t for t in broken["spec"]["templates"] if t["name"] == "step")
    step["retryStrategy"]["retryPolicy"] = "Sometimes"
    del broken["spec"]["templates"][0]["dag"]  # entrypoint without a body
    target = tmp_path / "broken.yaml"
    target.write_text(yaml.safe_dump(broken))
    proc = _argolint(target)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "INVALID" in proc.stderr


# --- server-side dry-run -----------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
@pytest.mark.usefixtures("keda_crds_installed")
def test_overlay_server_side_dry_run(env: str, cluster: Any, kubectl: Path) -> None:
    objs = tools.render(tools.OVERLAYS[env])
    # A server dry run of namespaced objects needs their namespace to exist; whether it does
    # must not depend on which test ran before (the rehearsal applies it for real).
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    assert namespaces, "the overlay ships its Namespace"
    _apply(kubectl, cluster.kubeconfig, namespaces, dry_run=False)
    out = _apply(kubectl, cluster.kubeconfig, objs, dry_run=True)
    assert out.count("(server dry run)") == len(objs), out


@pytest.fixture(scope="module")
def kcc_crds_installed(cluster: Any, kubectl: Path) -> None:
    """Config Connector's real CRDs (../shared/crds), installed so the API server validates."""
    try:
        crds = list(tools.kcc_crds())
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))
    tools.install_crds(kubectl, cluster.kubeconfig, crds)


@pytest.mark.cluster
@pytest.mark.parametrize("env", tools.ENVIRONMENTS)
@pytest.mark.usefixtures("kcc_crds_installed")
def test_infra_overlay_server_side_dry_run(env: str, cluster: Any, kubectl: Path) -> None:
    """Every object of the infra overlay, dry-run with strict field validation. The namespace
    is made unique per run (the only change), and exists for real so its objects can be
    checked; it is deleted afterwards."""
    objs = copy.deepcopy(tools.render(tools.OVERLAYS[f"infra-{env}"]))
    namespace = f"bd-infra-{env}-{uuid.uuid4().hex[:8]}"
    for obj in objs:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        else:
            obj["metadata"]["namespace"] = namespace
    base = [str(kubectl), f"--kubeconfig={cluster.kubeconfig}"]
    proc = _run([*base, "create", "namespace", namespace])
    assert proc.returncode == 0, proc.stderr
    try:
        out = _apply(kubectl, cluster.kubeconfig, objs, dry_run=True)
    finally:
        _run([*base, "delete", "namespace", namespace, "--wait=false"])
    assert out.count("(server dry run)") == len(objs), out
    assert len({o["kind"] for o in objs}) >= 13, "every Config Connector kind is checked"


@pytest.mark.cluster
@pytest.mark.usefixtures("kcc_crds_installed")
def test_infra_dry_run_can_fail(cluster: Any, kubectl: Path) -> None:
    (pool, *_) = tools.find(tools.render(tools.OVERLAYS["infra-dev"]), "ContainerNodePool")
    pool = copy.deepcopy(pool)
    pool["metadata"]["namespace"] = "default"
    pool["spec"]["autoscaling"]["totalMaxNodeCountt"] = 3
    proc = _run(
        [
            str(kubectl),
            f"--kubeconfig={cluster.kubeconfig}",
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
        ],
        stdin=yaml.safe_dump(pool),
    )
    assert proc.returncode != 0
    assert "totalMaxNodeCountt" in proc.stderr


# --- end to end --------------------------------------------------------------------------------


def _e2e_variant(template: dict[str, Any], namespace: str, run_id: str) -> dict[str, Any]:
    """The rendered template with exactly the test hooks this module needs (docstring)."""
    variant = copy.deepcopy(template)
    variant["metadata"]["name"] = E2E_TEMPLATE
    variant["metadata"]["namespace"] = namespace
    variant["metadata"].setdefault("labels", {})[RUN_LABEL] = run_id
    del variant["spec"]["podGC"]
    for param in variant["spec"]["arguments"]["parameters"]:
        if param["name"] == "retry-backoff":
            param["value"] = "1s"
    step = next(t for t in variant["spec"]["templates"] if t["name"] == "step")
    order_id = "inputs.parameters['order-id']"
    is_process = "inputs.parameters.step == 'process'"
    step["metadata"].setdefault("annotations", {}).update(
        {
            "burst-dispatcher.test/fail": f"{{{{={is_process} && ({order_id} startsWith 'fail-') ? 'true' : 'false'}}}}",
            "burst-dispatcher.test/preempt": f"{{{{=!({is_process}) ? 'false' : ({order_id} startsWith 'doomed-') ? 'always' : "
            f"({order_id} startsWith 'flaky-') ? 'true' : 'false'}}}}",
        }
    )
    return variant


class E2E:
    def __init__(self, cluster: Any, tmp: Path, run_id: str) -> None:
        from kubernetes import client

        self.namespace: str = cluster.namespace
        self.kubeconfig: str = cluster.kubeconfig
        self.api = cluster.api_client()
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.tmp = tmp
        self.run_id = run_id
        self.pools = {
            n.metadata.name: (n.metadata.labels or {}).get(POOL_LABEL)
            for n in self.core.list_node().items
        }

    def submit(self, orders: list[dict[str, Any]]) -> str:
        (body,) = _plan_workflows(
            self.tmp / uuid.uuid4().hex, tools.OVERLAYS["dev"] / "config.yaml", orders
        )
        assert set(body["spec"]) == {"workflowTemplateRef", "arguments"}
        body["spec"]["workflowTemplateRef"]["name"] = E2E_TEMPLATE
        body["metadata"]["namespace"] = self.namespace
        body["metadata"]["labels"][RUN_LABEL] = self.run_id
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "workflows", body
        )
        return str(body["metadata"]["name"])

    def wait(self, name: str) -> dict[str, Any]:
        """The Workflow once finished: watch events, no sleeping; fails at the deadline."""
        from kubernetes import watch

        deadline = time.monotonic() + WORKFLOW_TIMEOUT
        last: dict[str, Any] = {}
        while (remaining := deadline - time.monotonic()) > 0:
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                "workflows",
                field_selector=f"metadata.name={name}",
                timeout_seconds=max(1, int(remaining)),
            )
            for event in stream:
                last = event["object"]
                if (last.get("status") or {}).get("phase") in FINISHED:
                    return last
        pytest.fail(
            f"Workflow {name} not finished after {WORKFLOW_TIMEOUT}s: "
            f"{json.dumps(last.get('status', {}))[:3000]}"
        )

    def pods(self, name: str) -> dict[str, Any]:
        """Pods of a Workflow by Argo node name."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"workflows.argoproj.io/workflow={name}"
        ).items
        return {p.metadata.annotations["workflows.argoproj.io/node-name"]: p for p in pods}

    def pool_of(self, pod: Any) -> str | None:
        return self.pools.get(pod.spec.node_name)


def _order_steps(wf: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """order_id -> step name -> the step's node (a Retry node, or Skipped/Omitted)."""
    nodes = wf["status"]["nodes"]
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for node in nodes.values():
        if node.get("templateName") != "order" or node["type"] != "DAG":
            continue
        params = {p["name"]: p.get("value") for p in node["inputs"]["parameters"]}
        result[str(params["order-id"])] = {
            n["displayName"]: n
            for n in nodes.values()
            if n.get("boundaryID") == node["id"] and n["type"] != "Pod"  # attempts: _attempts
        }
    return result


def _summary(wf: dict[str, Any]) -> str:
    """Phase, message and every node's phase/message: what a failed assertion needs to show."""
    status = wf.get("status") or {}
    lines = [f"{wf['metadata']['name']}: {status.get('phase')} {status.get('message') or ''}"]
    for node in (status.get("nodes") or {}).values():
        lines.append(
            f"  {node['displayName'][:50]} {node['type']} {node['phase']} "
            f"{(node.get('message') or '')[:200]}"
        )
    return "\n".join(lines)


def _attempts(wf: dict[str, Any], retry_node: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = wf["status"]["nodes"]
    attempts = [nodes[c] for c in retry_node.get("children", []) if nodes[c]["type"] == "Pod"]
    return sorted(attempts, key=lambda n: n["name"])


def _e2e_objects(namespace: str, run_id: str) -> list[dict[str, Any]]:
    """The dev overlay's objects an e2e run needs, made this run's: the template its e2e
    variant, everything else (and every RBAC subject) in the test namespace."""
    docs = []
    for obj in tools.render(tools.OVERLAYS["dev"]):
        if obj["kind"] not in E2E_KINDS or obj["metadata"]["name"] == "burst-dispatcher-config":
            continue
        obj = copy.deepcopy(obj)
        if obj["kind"] == "WorkflowTemplate":
            obj = _e2e_variant(obj, namespace, run_id)
        elif obj["kind"] != "PriorityClass":
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
        docs.append(obj)
    return docs


@pytest.fixture(scope="module")
def e2e(cluster: Any, kubectl: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    run_id = uuid.uuid4().hex[:10]
    _apply(kubectl, cluster.kubeconfig, _e2e_objects(cluster.namespace, run_id), dry_run=False)
    harness = E2E(cluster, tmp_path_factory.mktemp("e2e"), run_id)
    try:
        yield harness
    finally:
        harness.custom.delete_collection_namespaced_custom_object(
            GROUP, VERSION, harness.namespace, "workflows", label_selector=f"{RUN_LABEL}={run_id}"
        )
        harness.api.close()


@pytest.mark.cluster
def test_batch_succeeds_on_the_class_pool_with_optional_steps(e2e: E2E) -> None:
    suffix = uuid.uuid4().hex[:8]
    plain, enriched = f"plain-{suffix}", f"enriched-{suffix}"
    name = e2e.submit([_order(plain), _order(enriched, enrich=True, qc=False)])
    wf = e2e.wait(name)
    assert wf["status"]["phase"] == "Succeeded", _summary(wf)
    steps = _order_steps(wf)
    assert set(steps) == {plain, enriched}
    phases = {oid: {s: n["phase"] for s, n in by_step.items()} for oid, by_step in steps.items()}
    assert phases[plain] == {
        "fetch-input": "Succeeded",
        "validate": "Succeeded",
        "process": "Succeeded",
        "enrich": "Skipped",
        "qc": "Succeeded",
        "publish-output": "Succeeded",
    }
    assert phases[enriched]["enrich"] == "Succeeded"
    assert phases[enriched]["qc"] == "Skipped"
    assert phases[enriched]["publish-output"] == "Succeeded"
    pods = e2e.pods(name)
    step_pods = [p for n, p in pods.items() if ".onExit" not in n]
    assert len(step_pods) == 10  # 6 + 6 steps, two skipped
    for pod in step_pods:
        assert pod.spec.node_selector == {POOL_LABEL: "small-spot"}
        assert e2e.pool_of(pod) == "small-spot"
        (main,) = [c for c in pod.spec.containers if c.name == "main"]
        assert main.resources.requests == {
            "cpu": "500m",
            "memory": "1Gi",
            "ephemeral-storage": "4Gi",  # the small class's scratch-sizes entry
        }
        assert main.resources.limits["ephemeral-storage"] == "4Gi"
        (scratch,) = [v for v in pod.spec.volumes if v.name == "scratch"]
        assert scratch.empty_dir.size_limit == "4Gi"
        assert [(m.name, m.mount_path) for m in main.volume_mounts if m.name == "scratch"] == [
            ("scratch", "/scratch")
        ]
        assert pod.metadata.annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
        assert pod.spec.priority_class_name == "burst-dispatcher-batch"
        assert pod.spec.service_account_name == "burst-dispatcher-workflow"
    (report,) = [p for n, p in pods.items() if n.startswith(f"{name}.onExit(")]
    assert e2e.pool_of(report) == "ondemand"
    assert report.spec.service_account_name == "burst-dispatcher-report"
    args = next(c for c in report.spec.containers if c.name == "main").args
    assert args[:7] == [
        "report",
        "--workflow",
        name,
        "--namespace",
        e2e.namespace,
        "--status",
        "Succeeded",
    ]


@pytest.mark.cluster
def test_failing_order_fails_alone_and_the_exit_handler_reports_it(e2e: E2E) -> None:
    suffix = uuid.uuid4().hex[:8]
    good, bad = f"good-{suffix}", f"fail-{suffix}"
    # The failing order's params name the good one the way Argo writes an item into a display
    # name: before issue 9 `dispatcher report` then failed the good order too.
    hostile = _order(bad) | {"params": {"x": f"x,order_id:{good}", "y": f"order_id={good}"}}
    name = e2e.submit([_order(good), hostile])
    wf = e2e.wait(name)
    assert wf["status"]["phase"] == "Failed", _summary(wf)
    steps = _order_steps(wf)
    assert steps[good]["publish-output"]["phase"] == "Succeeded"
    assert steps[bad]["process"]["phase"] == "Failed"
    assert len(_attempts(wf, steps[bad]["process"])) == 4  # the first try and 3 retries
    assert "publish-output" not in steps[bad] or steps[bad]["publish-output"]["phase"] == "Omitted"
    assert any(f"order_id:{good}" in n["displayName"] for n in wf["status"]["nodes"].values())
    (exit_node,) = [n for n in wf["status"]["nodes"].values() if n["name"] == f"{name}.onExit"]
    assert exit_node["phase"] == "Succeeded"
    (report,) = [p for n, p in e2e.pods(name).items() if n.startswith(f"{name}.onExit(")]
    args = next(c for c in report.spec.containers if c.name == "main").args
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--status"] == "Failed"
    assert flags["--topic"] == "projects/acme-orders-dev/topics/order-results"
    assert max(len(a) for a in args) < 200  # nothing on the command line grows with the batch
    # The exit handler's own command, reading this Workflow from the real API server.
    outcome = _run([*_dispatcher(), *args, "--kubeconfig", e2e.kubeconfig, "--dry-run"])
    assert outcome.returncode == 0, outcome.stderr
    published = [json.loads(line) for line in outcome.stdout.splitlines() if line.strip()]
    statuses = {m["attributes"]["order_id"]: m["data"] for m in published}
    assert set(statuses) == {good, bad}, outcome.stdout
    assert statuses[bad]["status"] == "Failed"
    assert any(s["step"] == "process" for s in statuses[bad]["failed_steps"])
    assert statuses[good]["status"] == "Succeeded" and statuses[good]["failed_steps"] == []


@pytest.mark.cluster
def test_preempted_step_is_retried_and_the_last_attempt_runs_on_demand(e2e: E2E) -> None:
    suffix = uuid.uuid4().hex[:8]
    flaky, doomed = f"flaky-{suffix}", f"doomed-{suffix}"
    name = e2e.submit([_order(flaky), _order(doomed)])
    wf = e2e.wait(name)
    steps = _order_steps(wf)
    pods = e2e.pods(name)
    # Preempted once: the retry on the same spot pool finishes the order.
    flaky_attempts = _attempts(wf, steps[flaky]["process"])
    assert [a["phase"] for a in flaky_attempts] == ["Failed", "Succeeded"]
    assert steps[flaky]["publish-output"]["phase"] == "Succeeded"
    assert [e2e.pool_of(pods[a["name"]]) for a in flaky_attempts] == ["small-spot", "small-spot"]
    # Preempted on every attempt: attempts 0-2 on spot, the last one on the on-demand pool.
    doomed_attempts = _attempts(wf, steps[doomed]["process"])
    assert len(doomed_attempts) == 4
    selectors = [pods[a["name"]].spec.node_selector[POOL_LABEL] for a in doomed_attempts]
    assert selectors == ["small-spot", "small-spot", "small-spot", "ondemand"]
    assert e2e.pool_of(pods[doomed_attempts[-1]["name"]]) == "ondemand"
    assert wf["status"]["phase"] == "Failed"
