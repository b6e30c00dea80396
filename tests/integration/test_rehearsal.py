"""The production rehearsal: the dev overlay, exactly as it ships, run on the test cluster.

What ships is what runs: the overlay is rendered by the built kubectl's kustomize and applied
server-side through dispatcher.local.overlay, as the local stack applies it (CRDs the cluster
lacks first: KEDA's real ones from its Go module, a stand-in for Managed Prometheus's
PodMonitoring, see dispatcher/local/crds/podmonitorings.yaml). `dispatcher run` is started
with the rendered Deployment's command and arguments, authenticated as the shipped
ServiceAccount (a TokenRequest token, never `system:masters`), reading the rendered ConfigMap's
file. The operator changes a limit with `dispatcher limits set` as a member of the shipped
operator group. The shipped order-pipeline WorkflowTemplate runs under the real Argo controller
on kwok nodes shaped like the dev node pools.

Judged from the API server: every order in exactly one Workflow, every Workflow Succeeded,
every pod on the pool its class (or, for the exit handler, its fallback) names, the live caps
held (the one the operator set included), no 403 anywhere. Mid-swarm a rolling restart replaces
the replica (new identity, SIGTERM drain of the old one). Finally "KEDA" scales the Deployment
and a second server-side apply of the same overlay goes through without a conflict.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.config import Settings, parse_settings
from dispatcher.local import identities
from dispatcher.local import overlay as kit
from dispatcher.local.process import DispatcherProcess
from tests.integration.cluster_support import History
from tests.manifests import tools

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.pubsub,
    pytest.mark.slow,
    pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True),
]

OVERLAY, INFRA = "k8s/overlays/dev", "k8s/infra/overlays/dev"
SWARM = {"small": 60, "medium": 12, "large": 3}
SIZES = {"small": 1_000_000, "medium": 1_000_000_000, "large": 10_000_000_000}
OPERATOR_SMALL_CAP = 1  # set by the operator before the swarm; binding with 60 small orders
POOL_LABEL = "cloud.google.com/gke-nodepool"
ORDER_IDS = "burst-dispatcher.io/order-ids"


def _swarm(run: str) -> dict[str, str]:
    """order id -> class; ids unique to this run (Workflow names derive from them)."""
    return {f"rh-{run}-{c}-{i:03d}": c for c, n in SWARM.items() for i in range(n)}


def _order(order_id: str, size_class: str) -> str:
    size = SIZES[size_class]
    return json.dumps({"order_id": order_id, "input": {"uri": "gs://in/x", "size_bytes": size}})


def _replica(
    deployment: dict[str, Any], *, mount: Path, env: dict[str, str], log: Path
) -> DispatcherProcess:
    """The Deployment's own command line, with the config volume's mount path mapped to `mount`."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[:2] == ["dispatcher", "run"], argv
    mount_path = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    args = [a.replace(mount_path, str(mount)) for a in argv[2:]]
    # Port 8080 may be taken on a shared test host; everything else is as rendered.
    return DispatcherProcess([*args, "--http-port", "0"], env=env, log_path=log)


def _forbidden(process: DispatcherProcess) -> list[dict[str, Any]]:
    return [e for e in process.snapshot() if e.get("status") == 403 or "Forbidden" in json.dumps(e)]


def _judge(
    history: History, orders: dict[str, str], settings: Settings, pools: dict[str, str]
) -> dict[str, Any]:
    mine = _mine(history, orders)
    counts: Counter[str] = Counter()
    placed: Counter[str] = Counter()
    for name, body in mine.items():
        ids = json.loads(body["metadata"]["annotations"][ORDER_IDS])
        counts.update(ids)
        size_class = body["metadata"]["labels"]["burst-dispatcher.io/size-class"]
        assert {orders[i] for i in ids} == {size_class}, f"{name} mixes classes"
        assert history.phases[name] == "Succeeded", f"{name}: {history.phases[name]}"
        params = {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}
        spec = settings.size_class(size_class)
        expected = {"step": spec.node_pool, "report": params["fallback-node-pool"]}
        for node in body["status"]["nodes"].values():
            if node["type"] != "Pod":
                continue
            pool = pools[node["hostNodeName"]]
            assert pool == expected[node["templateName"]], f"{name}/{node['displayName']}: {pool}"
            placed[f"{node['templateName']}@{pool}"] += 1
    assert set(counts) == set(orders), f"missing: {sorted(set(orders) - set(counts))[:5]}"
    assert max(counts.values()) == 1, "an order is in two Workflows"
    caps = {c.name: c.max_live_workflows for c in settings.classes}
    caps["small"] = OPERATOR_SMALL_CAP
    for size_class, peak in history.peak_live.items():
        assert peak <= caps[size_class], f"{size_class}: {peak} live > cap {caps[size_class]}"
    replicas = {b["metadata"]["labels"].get("burst-dispatcher.io/replica") for b in mine.values()}
    return {
        "workflows": len(mine),
        "pods": dict(placed),
        "peak_live": dict(history.peak_live),
        "replicas": replicas,
    }


def _second_apply(
    admin: k8s.ApiClient, kubectl: Path, kubeconfig: str, app: list[dict[str, Any]]
) -> None:
    """KEDA scales; the operator's live edit is in git; the same overlay applies cleanly."""
    apps, core = k8s.AppsV1Api(admin), k8s.CoreV1Api(admin)
    namespace = tools.one(app, "Deployment", "burst-dispatcher")["metadata"]["namespace"]
    # As KEDA's HPA does it: an update of the scale subresource.
    scale = apps.read_namespaced_deployment_scale("burst-dispatcher", namespace)
    scale.spec.replicas = 2
    apps.replace_namespaced_deployment_scale(
        "burst-dispatcher", namespace, scale, field_manager="kube-controller-manager"
    )
    # Until git carries the operator's `limits set`, a server-side apply refuses to undo it.
    refused = kit.dry_run(kubectl, kubeconfig, app)
    assert refused.returncode != 0 and ".data.config.yaml" in refused.stderr, refused.stderr
    assert '"dispatcher-limits-set"' in refused.stderr, refused.stderr
    assert "replicas" not in refused.stderr, refused.stderr
    live = core.read_namespaced_config_map("burst-dispatcher-config", namespace).data
    committed = copy.deepcopy(app)
    tools.one(committed, "ConfigMap", "burst-dispatcher-config")["data"] = dict(live)
    kit.apply(kubectl, kubeconfig, committed)
    assert apps.read_namespaced_deployment_scale("burst-dispatcher", namespace).spec.replicas == 2
    # What this guards: with a count in the manifest the same apply takes the Deployment back
    # from KEDA's 2 to 1 mid-burst (scale updates record no field owner, so nothing conflicts).
    pinned = copy.deepcopy(tools.one(app, "Deployment", "burst-dispatcher"))
    pinned["spec"]["replicas"] = 1
    fought = kit.dry_run(kubectl, kubeconfig, [pinned])
    assert fought.returncode != 0 or json.loads(fought.stdout)["spec"]["replicas"] == 1


def test_the_dev_overlay_runs_as_shipped(
    k8s_cluster: Any, cluster_bin_dir: Path, pubsub_emulator: Any, pubsub_clients: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    started = time.monotonic()
    kubectl, admin_config = cluster_bin_dir / "kubectl", k8s_cluster.kubeconfig
    app = kit.render(kubectl, OVERLAY)
    config_map = tools.one(app, "ConfigMap", "burst-dispatcher-config")
    settings = parse_settings(config_map["data"]["config.yaml"], source="rendered", environ={})
    namespace = settings.namespace
    deployment = tools.one(app, "Deployment", "burst-dispatcher")
    operators = tools.one(app, "RoleBinding", "burst-dispatcher-operator")
    operator_group = operators["subjects"][0]["name"]
    run = uuid.uuid4().hex[:8]
    orders = _swarm(run)
    replicas: list[DispatcherProcess] = []
    with k8s_cluster.api_client() as admin:
        try:
            kit.install_crds(admin, kubectl, admin_config)
        except tools.ToolUnavailable as exc:
            tools.unavailable(str(exc))
        pool_nodes = kit.pool_nodes(kit.render(kubectl, INFRA), "gke-rehearsal-dev")
        kit.ensure_nodes(admin, pool_nodes)
        # First apply takes over the objects the cluster tool pre-created from k8s/base.
        kit.apply(kubectl, admin_config, app, force=True)
        applied = time.monotonic()
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        dispatcher_config = identities.service_account_kubeconfig(
            admin, admin_kubeconfig=admin_config, namespace=namespace, account=account,
            path=tmp_path / "dispatcher.kubeconfig",
        )  # fmt: skip
        operator_config = identities.group_member_kubeconfig(
            admin, admin_kubeconfig=admin_config, user="rehearsal-operator",
            group=operator_group, path=tmp_path / "operator.kubeconfig",
        )  # fmt: skip
        pub, sub, project = pubsub_clients.publisher, pubsub_clients.subscriber, settings.pubsub
        topic = pub.topic_path(project.project, f"orders-{run}")
        pub.create_topic(name=topic)
        pub.create_topic(name=pub.topic_path(project.project, project.dead_letter_topic))
        sub.create_subscription(name=project.subscription_path(), topic=topic)
        pools = {
            n.metadata.name: (n.metadata.labels or {}).get(POOL_LABEL, "")
            for n in k8s.CoreV1Api(admin).list_node().items
        }
        selector = (
            f"app.kubernetes.io/managed-by=burst-dispatcher,"
            f"burst-dispatcher.io/environment={settings.environment}"
        )
        env = {"PUBSUB_EMULATOR_HOST": pubsub_emulator.host, "POD_NAMESPACE": namespace}
        env["KUBECONFIG"] = str(dispatcher_config)
        mount = tmp_path / "mount"
        try:
            with (
                kit.MountedConfigMap(admin, namespace=namespace, name="burst-dispatcher-config",
                                     directory=mount) as volume,
                History(admin, namespace, selector) as history,
            ):  # fmt: skip
                first = _replica(
                    deployment, mount=mount, log=tmp_path / "first.log",
                    env={**env, "POD_NAME": f"burst-dispatcher-{run}-a"},
                )  # fmt: skip
                replicas.append(first)
                first.wait_for("ops_listening", timeout=90)

                # The operator, as a member of the shipped group: may change limits, not more.
                changed = kit.cli(
                    ["limits", "set", "--class", "small", "--max-live", str(OPERATOR_SMALL_CAP)],
                    operator_config,
                )
                assert changed.returncode == 0, changed.stderr
                first.wait_for("limits_reloaded", timeout=60)
                status = kit.cli(["limits", "status", "--json"], operator_config)
                assert status.returncode == 0, status.stderr
                census = {c["class"]: c["cap"] for c in json.loads(status.stdout)["classes"]}
                assert census["small"] == OPERATOR_SMALL_CAP
                # `dispatcher status` as the operator: it lists the Deployment's pods and reports
                # each one (kwok's pods have no listener; test_status_cluster.py reads a real
                # /status through the proxy with this same Role).
                overview = kit.cli(["status", "-o", "json"], operator_config)
                assert overview.returncode == 0, overview.stderr
                document = json.loads(overview.stdout)
                assert {c["class"] for c in document["classes"]} == set(SWARM)
                assert document["replicas"], "the Deployment's pods are listed"
                for verb, extra in (("list", []), ("get", ["--subresource=proxy"])):
                    can = kit.run_status(
                        [str(kubectl), f"--kubeconfig={operator_config}", "auth", "can-i",
                         verb, "pods", *extra, "-n", namespace]
                    )  # fmt: skip
                    assert can == 0, f"the operator may not {verb} pods {extra}"
                for verb, resource in (("create", "workflows.argoproj.io"), ("get", "secrets")):
                    can = kit.run_status(
                        [str(kubectl), f"--kubeconfig={operator_config}", "auth", "can-i",
                         verb, resource, "-n", namespace]
                    )  # fmt: skip
                    assert can == 1, f"the operator may {verb} {resource}"

                futures = [pub.publish(topic, _order(oid, c).encode()) for oid, c in orders.items()]
                for future in futures:
                    future.result(timeout=60)
                published = time.monotonic()

                # Rolling restart (maxSurge 1, maxUnavailable 0): the new replica first, then
                # SIGTERM to the old one, while the small cap holds most orders back.
                kit.poll(
                    "two Workflows before the restart",
                    lambda: len(_mine(history, orders)) >= 2,
                    120,
                )
                second = _replica(
                    deployment, mount=mount, log=tmp_path / "second.log",
                    env={**env, "POD_NAME": f"burst-dispatcher-{run}-b"},
                )  # fmt: skip
                replicas.append(second)
                second.wait_for("ops_listening", timeout=90)
                assert first.terminate(timeout=90) == 0, "the old replica did not drain cleanly"
                restarted = time.monotonic()

                history.wait_for_orders(set(orders), timeout=300)
                kit.poll(
                    "every rehearsal Workflow Succeeded",
                    lambda: _finished(history, orders),
                    300,
                )
                verdict = _judge(history, orders, settings, pools)
                # Both identities created Workflows: the new replica took the rest of the swarm.
                assert verdict["replicas"] == {
                    f"burst-dispatcher-{run}-a",
                    f"burst-dispatcher-{run}-b",
                }
                assert volume.updates >= 1
            for process in replicas:
                assert _forbidden(process) == [], f"403 in {process.log_path}"
            done = time.monotonic()

            _second_apply(admin, kubectl, admin_config, app)
        finally:
            for process in replicas:
                process.close()
            kit.delete_workflows(admin, namespace, orders)
            with contextlib.suppress(ApiException):  # its pods are kwok's fakes: not kept
                k8s.AppsV1Api(admin).delete_namespaced_deployment("burst-dispatcher", namespace)
            kit.delete_nodes(admin, pool_nodes)
    print(
        f"\nrehearsal: {len(orders)} orders -> {verdict['workflows']} Workflows, "
        f"pods {verdict['pods']}, peak live {verdict['peak_live']}; apply "
        f"{applied - started:.1f}s, to publish {published - applied:.1f}s, restart at "
        f"{restarted - published:.1f}s, all Succeeded {done - published:.1f}s, "
        f"total {time.monotonic() - started:.1f}s"
    )


def _mine(history: History, orders: dict[str, str]) -> dict[str, dict[str, Any]]:
    """This run's Workflows (others in the namespace may share the environment label)."""
    return {
        name: body
        for name, body in list(history.bodies.items())
        if any(o in orders for o in json.loads(body["metadata"]["annotations"][ORDER_IDS]))
    }


def _finished(history: History, orders: dict[str, str]) -> bool:
    if not set(orders) <= set(history.order_ids()):
        return False
    mine = _mine(history, orders)
    failed = [n for n in mine if history.phases.get(n) in {"Failed", "Error"}]
    assert not failed, f"Workflows ended badly: {failed}"
    return all(history.phases.get(n) == "Succeeded" for n in mine)
