"""The start sequence of the local cluster: processes, ports and readiness, in order.

Why one place: etcd -> kube-apiserver -> scheduler, controller-manager, kwok -> Argo CRDs, nodes,
namespaces -> workflow-controller, as Argo's own least-privilege ServiceAccount (argo_rbac.py) ->
a smoke Workflow. Each step waits for the one before it with a deadline, and a failure stops
what was already started and names the failing component's log. Everything binds 127.0.0.1 on
ports free at start.
"""

from __future__ import annotations

import base64
import functools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from dispatcher.local import argo_rbac, autoscaler, nodes, procs
from dispatcher.local.certs import Pki, make_pki, tls_context
from dispatcher.local.cluster_objects import (
    ARGO_CONFIGMAP,
    ARGO_NAMESPACE,
    NAMESPACE,
    READY_TIMEOUT,
    apply_base_rbac,
    create_base_objects,
    exists,
    install_argo_crds,
    nodes_ready,
    smoke_workflow,
)
from dispatcher.local.paths import CLUSTER_DIR, share_dir

KUBECONFIG = "kubeconfig"

# Argo rate-limits each Workflow's reconciliation to one per DEFAULT_REQUEUE_TIME (10s in
# production): every step would cost ~10s here. Argo's own e2e tests run with 1s, so do we.
ARGO_REQUEUE_TIME = "1s"
# The controller's client-side rate limit and workers (docs/performance.md, "The Argo
# controller's ceiling"); BURST_CLUSTER_ARGO_FLAGS replaces them (space-separated flags).
# Argo's defaults (--qps 20, --burst 30 per client) throttled pod creation to ~2/s here; the
# same flags are what docs/deploy.md asks of the platform's controller Deployment.
ARGO_TUNING: tuple[str, ...] = ("--qps=100", "--burst=200")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, server: str, pki: Pki, namespace: str) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "burst-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(pki.ca_crt)},
            }
        ],
        "users": [
            {
                "name": "burst-test-admin",
                "user": {
                    "client-certificate-data": _b64(pki.admin_crt),
                    "client-key-data": _b64(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "burst-test",
                "context": {
                    "cluster": "burst-test",
                    "user": "burst-test-admin",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "burst-test",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)


def _kwok_config(bins: Path, state: Path) -> Path:
    """kwok's node stages and pod-ready/pod-delete from its module, plus our pod stages."""
    docs: list[str] = []
    stages = share_dir(bins) / "kwok-stages"
    for name in (
        "node-initialize.yaml",
        "node-heartbeat-with-lease.yaml",
        "pod-ready.yaml",
        "pod-delete.yaml",
    ):
        docs.append((stages / name).read_text())
    docs.append((CLUSTER_DIR / "kwok-stages.yaml").read_text())
    path = state / "kwok.yaml"
    path.write_text("\n---\n".join(docs))
    return path


class _Starter:
    """Starts the components in order; knows what it started so a failure can undo it."""

    def __init__(self, bins: Path, state: Path) -> None:
        self.bins = bins
        self.state = state
        self.started: list[procs.Proc] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> procs.Proc:
        proc = procs.start(name, [str(self.bins / name), *args], self.state, env)
        self.started.append(proc)
        return proc


def launch(
    bins: Path,
    state: Path,
    say: Callable[[str], None],
    *,
    pools: list[dict[str, Any]] | None = None,
) -> str:
    """Start every component into `state` and wait until a Workflow succeeds; returns the
    apiserver's URL. On any failure the components already started are stopped again.

    With `pools` (GKE ContainerNodePool objects) there are no fixed nodes: Karpenter
    (autoscaler.py) makes them for those pools on demand, and the smoke Workflow is left out
    (it would leave a node behind for the consolidation delay)."""
    pki = make_pki(state / "pki")
    (state / "tokens.csv").write_text(f"{uuid.uuid4().hex},admin,admin,system:masters\n")
    (etcd_port, peer_port, api_port, kcm_port, sched_port, kwok_port) = procs.free_ports(6)
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = state / KUBECONFIG
    _write_kubeconfig(kubeconfig, server, pki, NAMESPACE)
    starter = _Starter(bins, state)
    try:
        etcd = starter.start(
            "etcd",
            [
                "--name=default",
                f"--data-dir={state / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        procs.wait_for(
            "etcd /health",
            lambda: procs.http_ok(f"http://127.0.0.1:{etcd_port}/health"),
            READY_TIMEOUT,
            etcd,
        )
        say(f"etcd ready on 127.0.0.1:{etcd_port}")
        api = starter.start(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={state / 'apiserver'}",
                f"--tls-cert-file={pki.server_crt}",
                f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca_crt}",
                f"--token-auth-file={state / 'tokens.csv'}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=0",
            ],
        )
        tls = tls_context(pki.ca_crt.parent)
        procs.wait_for(
            "kube-apiserver /readyz",
            lambda: procs.http_ok(f"{server}/readyz", tls),
            READY_TIMEOUT,
            api,
        )
        say(f"kube-apiserver ready at {server}")
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        kcm = starter.start(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={kcm_port}",
                f"--cert-dir={state / 'kcm'}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_crt}",
                f"--cluster-signing-cert-file={pki.ca_crt}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--use-service-account-credentials=false",
                "--controllers=*,-cloud-node-lifecycle-controller,-service-lb-controller,"
                "-node-route-controller" + autoscaler.CONTROLLERS_OFF * (pools is not None),
            ],
        )
        sched = starter.start(
            "kube-scheduler",
            [*common, f"--secure-port={sched_port}", f"--cert-dir={state / 'scheduler'}"],
        )
        kwok = starter.start(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                f"--config={_kwok_config(bins, state)}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{kwok_port}",
                "--node-lease-duration-seconds=40",
                "--cidr=10.0.0.1/16",
                "--node-ip=10.0.0.1",
            ],
        )
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        with api_client:
            install_argo_crds(api_client, bins)
            create_base_objects(api_client, fixed_nodes=pools is None)
            say("Argo CRDs established; namespaces, configmap and nodes created")
            if pools is not None:
                scaler = autoscaler.launch(api_client, state, kubeconfig=kubeconfig, pools=pools)
                starter.started.append(scaler.proc)
            # Not admin: Argo's own install RBAC, so a permission the manifests need shows up.
            argo_kubeconfig = argo_rbac.controller_kubeconfig(
                api_client,
                namespace=ARGO_NAMESPACE,
                admin_kubeconfig=kubeconfig,
                path=state / "argo.kubeconfig",
                share=share_dir(bins),
            )
            argo = starter.start(
                "workflow-controller",
                [
                    f"--kubeconfig={argo_kubeconfig}",
                    f"--namespace={ARGO_NAMESPACE}",
                    f"--configmap={ARGO_CONFIGMAP}",
                    "--executor-image=quay.io/argoproj/argoexec:v4.0.5",
                    "--loglevel=info",
                    *os.environ.get("BURST_CLUSTER_ARGO_FLAGS", " ".join(ARGO_TUNING)).split(),
                ],
                env={
                    "LEADER_ELECTION_DISABLE": "true",
                    "DEFAULT_REQUEUE_TIME": os.environ.get(
                        "BURST_CLUSTER_ARGO_REQUEUE_TIME", ARGO_REQUEUE_TIME
                    ),
                },
            )
            insecure = procs.insecure_tls()
            procs.wait_for(
                "kube-scheduler /healthz",
                lambda: procs.http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure),
                READY_TIMEOUT,
                sched,
            )
            procs.wait_for(
                "kube-controller-manager /healthz",
                lambda: procs.http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure),
                READY_TIMEOUT,
                kcm,
            )
            say("scheduler and controller-manager healthy")
            core = k8s.CoreV1Api(api_client)
            procs.wait_for(
                "all kwok nodes Ready",
                lambda: pools is not None or nodes_ready(core),
                READY_TIMEOUT,
                kwok,
            )
            for ns in (NAMESPACE, ARGO_NAMESPACE):
                procs.wait_for(
                    f"serviceaccount default in {ns}",
                    functools.partial(exists, core.read_namespaced_service_account, "default", ns),
                    READY_TIMEOUT,
                    kcm,
                )
            applied = apply_base_rbac(api_client)
            say(f"nodes Ready; applied {applied} RBAC objects from k8s/base")
            if pools is None:
                smoke_workflow(api_client, argo)
                say("smoke Workflow Succeeded")
            else:
                autoscaler.wait_ready(api_client, scaler)
                say(f"Karpenter ready with {scaler.pools} NodePools at zero nodes")
    except BaseException:
        procs.stop(starter.started)
        raise
    return server
