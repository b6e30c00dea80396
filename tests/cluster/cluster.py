"""Bring the local test cluster up and down.

Why: one place owns the start order and the readiness checks (etcd -> kube-apiserver ->
scheduler, controller-manager, kwok -> Argo CRDs, nodes, namespaces -> workflow-controller, as
Argo's own least-privilege ServiceAccount (argo_rbac.py) -> a smoke Workflow), so the CLI and
the pytest plugin get the same, fully working cluster or a clear error with the failing
component's log. Everything binds 127.0.0.1 on ports free at start.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import os
import shutil
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import utils as k8s_utils
from kubernetes.client.rest import ApiException

from tests.cluster import argo_rbac, nodes, procs
from tests.cluster.certs import Pki, make_pki
from tests.cluster.paths import CLUSTER_DIR, REPO_ROOT, bin_dir, share_dir, state_dir

# The tests' own namespace, not the overlay's (`burst-dispatcher`): tests that apply the shipped
# overlay (the rehearsal, the deploy guide) bring its admission policy, which admits only the
# shipped WorkflowTemplate there, while the loop tests run a light template of their own.
NAMESPACE = "bd-tests"
ARGO_NAMESPACE = "argo"
ARGO_CONFIGMAP = "workflow-controller-configmap"
STATE_FILE = "cluster.json"
KUBECONFIG = "kubeconfig"
READY_TIMEOUT = 90.0
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}

# Argo rate-limits each Workflow's reconciliation to one per DEFAULT_REQUEUE_TIME (10s in
# production): every step would cost ~10s here. Argo's own e2e tests run with 1s, so do we.
ARGO_REQUEUE_TIME = "1s"

# Argo's controller config. Metrics are off (they would need a fixed port); the executor image is
# never pulled because kwok fakes every pod's lifecycle.
ARGO_CONFIG: dict[str, str] = {
    "metricsConfig": "enabled: false\n",
    "telemetryConfig": "enabled: false\n",
}


@dataclass(frozen=True)
class ClusterInfo:
    """What a client needs to use a running cluster; saved as state/cluster.json."""

    state: str
    kubeconfig: str
    server: str
    namespace: str
    argo_namespace: str
    bin_dir: str
    started_at: float
    started_by: str = "cli"

    def api_client(self) -> k8s.ApiClient:
        """A fresh kubernetes ApiClient for this cluster (admin credentials)."""
        return k8s_config.new_client_from_config(config_file=self.kubeconfig)


def load_info(state: Path | None = None) -> ClusterInfo | None:
    """The recorded cluster in the state dir, if any (running or not)."""
    path = (state or state_dir()) / STATE_FILE
    try:
        return ClusterInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _tls_context(pki_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    return ctx


def is_healthy(info: ClusterInfo) -> bool:
    """All recorded processes alive and the apiserver answering /readyz."""
    state = Path(info.state)
    running = {p.name for p in procs.recorded(state)}
    if not set(COMPONENTS) <= running:
        return False
    return procs.http_ok(f"{info.server}/readyz", _tls_context(state / "pki"))


COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "workflow-controller",
)


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


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise up/down/attach/detach across processes (two pytest sessions, CLI + pytest)."""
    state = state_dir()
    lock = state.with_name(state.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(quiet: bool = False, started_by: str = "cli") -> ClusterInfo:
    """Start a cluster in the state dir, or return the healthy one already running there."""
    with _locked():
        return _up_locked(quiet, started_by)


def down() -> list[str]:
    """Stop every recorded process and remove the state dir. Returns the names stopped."""
    with _locked():
        return _down_locked()


def attach(user: int) -> ClusterInfo:
    """For test sessions: reuse or start (started_by=pytest) a cluster and register as a user."""
    with _locked():
        info = _up_locked(quiet=True, started_by="pytest")
        users = Path(info.state) / "users"
        users.mkdir(exist_ok=True)
        (users / str(user)).touch()
        return info


def detach(info: ClusterInfo, user: int) -> bool:
    """Unregister; stop the cluster if a test session started it and no live user remains."""
    with _locked():
        users = Path(info.state) / "users"
        (users / str(user)).unlink(missing_ok=True)
        others = [p for p in users.glob("*") if p.name.isdigit() and procs.pid_alive(int(p.name))]
        if info.started_by != "pytest" or others:
            return False
        _down_locked()
        return True


def _up_locked(quiet: bool, started_by: str) -> ClusterInfo:
    state = state_dir()
    existing = load_info(state)
    if existing is not None and is_healthy(existing):
        return existing
    _down_locked(keep_logs=True)  # leftovers of a dead or half-started cluster
    bins = bin_dir()
    state.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - t0:5.1f}s] {msg}", flush=True)

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
        tls = _tls_context(pki.ca_crt.parent)
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
                "-node-route-controller",
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
            _install_argo_crds(api_client, bins)
            _create_base_objects(api_client)
            say("Argo CRDs established; namespaces, configmap and nodes created")
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
                lambda: _nodes_ready(core),
                READY_TIMEOUT,
                kwok,
            )
            for ns in (NAMESPACE, ARGO_NAMESPACE):
                procs.wait_for(
                    f"serviceaccount default in {ns}",
                    functools.partial(_exists, core.read_namespaced_service_account, "default", ns),
                    READY_TIMEOUT,
                    kcm,
                )
            applied = apply_base_rbac(api_client)
            say(f"nodes Ready; applied {applied} RBAC objects from k8s/base")
            _smoke_workflow(api_client, argo)
            say("smoke Workflow Succeeded")
    except BaseException:
        procs.stop(starter.started)
        raise
    info = ClusterInfo(
        state=str(state),
        kubeconfig=str(kubeconfig),
        server=server,
        namespace=NAMESPACE,
        argo_namespace=ARGO_NAMESPACE,
        bin_dir=str(bins),
        started_at=time.time(),
        started_by=started_by,
    )
    (state / STATE_FILE).write_text(json.dumps(asdict(info), indent=2))
    say("cluster up")
    return info


def _exists(read: Callable[..., Any], *args: str) -> bool:
    try:
        read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _install_argo_crds(api_client: k8s.ApiClient, bins: Path) -> None:
    ext = k8s.ApiextensionsV1Api(api_client)
    names: list[str] = []
    crd_dir = share_dir(bins) / "argo-crds"
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            ext.create_custom_resource_definition(doc)
            names.append(doc["metadata"]["name"])
    if not names:
        raise RuntimeError(f"no Argo CRDs found in {crd_dir}")

    def established() -> bool:
        for name in names:
            crd = ext.read_custom_resource_definition(name)
            conditions = crd.status.conditions or [] if crd.status else []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    procs.wait_for("Argo CRDs Established", established, READY_TIMEOUT)


def _create_base_objects(api_client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api_client)
    for ns in (NAMESPACE, ARGO_NAMESPACE):
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    core.create_namespaced_config_map(
        ARGO_NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ARGO_CONFIGMAP},
            "data": ARGO_CONFIG,
        },
    )
    for node in nodes.all_nodes():
        core.create_node(node)


def _nodes_ready(core: k8s.CoreV1Api) -> bool:
    listed = core.list_node(label_selector="type=kwok").items
    if len(listed) != len(nodes.all_nodes()):
        return False
    for node in listed:
        conditions = node.status.conditions or [] if node.status else []
        if not any(c.type == "Ready" and c.status == "True" for c in conditions):
            return False
    return True


def apply_base_rbac(api_client: k8s.ApiClient, base: Path | None = None) -> int:
    """Create the ServiceAccount/Role/RoleBinding objects found in k8s/base (if it exists).

    Plain YAML only: kustomize transformations (namePrefix, patches) are not applied; objects
    without a namespace go to the dispatcher's namespace. Returns how many objects were created.
    """
    base = base or REPO_ROOT / "k8s" / "base"
    if not base.is_dir():
        return 0
    created = 0
    for path in sorted([*base.glob("*.yaml"), *base.glob("*.yml")]):
        if path.name.startswith("kustomization"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in RBAC_KINDS:
                continue
            namespaced = doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
            if namespaced:
                doc.setdefault("metadata", {}).setdefault("namespace", NAMESPACE)
            try:
                k8s_utils.create_from_dict(api_client, doc)
            except k8s_utils.FailToCreateError as exc:
                if all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
                    continue
                raise
            created += 1
    return created


def _smoke_workflow(api_client: k8s.ApiClient, argo: procs.Proc) -> None:
    """One trivial Workflow end to end: proves scheduler, kwok stages and Argo all work."""
    custom = k8s.CustomObjectsApi(api_client)
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}],
        },
    }
    group, version, plural = "argoproj.io", "v1alpha1", "workflows"
    custom.create_namespaced_custom_object(group, version, ARGO_NAMESPACE, plural, body)

    def succeeded() -> bool:
        wf = custom.get_namespaced_custom_object(group, version, ARGO_NAMESPACE, plural, name)
        phase = (wf.get("status") or {}).get("phase")
        if phase in {"Failed", "Error"}:
            raise procs.Fatal(f"smoke Workflow {name} ended {phase}: {wf.get('status')}")
        return bool(phase == "Succeeded")

    procs.wait_for(f"smoke Workflow {name} Succeeded", succeeded, READY_TIMEOUT, argo)
    custom.delete_namespaced_custom_object(group, version, ARGO_NAMESPACE, plural, name)


def _down_locked(keep_logs: bool = False) -> list[str]:
    state = state_dir()
    running = procs.recorded(state)
    # Clients first, then the apiserver, etcd last, so nothing logs a storm of connection errors.
    # Argo's controller does not exit on SIGTERM in any useful time: it gets SIGKILL after 2s.
    tiers: tuple[tuple[set[str], float], ...] = (
        ({"workflow-controller"}, 2.0),
        ({"kwok", "kube-scheduler", "kube-controller-manager"}, 10.0),
        ({"kube-apiserver"}, 15.0),
        ({"etcd"}, 15.0),
    )
    known = set().union(*(names for names, _ in tiers))
    for names, grace in tiers:
        procs.stop([p for p in running if p.name in names], timeout=grace)
    procs.stop([p for p in running if p.name not in known])
    if keep_logs and (state / "logs").is_dir():
        # A failed or killed run: keep its logs for the post-mortem.
        previous = state.with_name(state.name + "-previous-logs")
        shutil.rmtree(previous, ignore_errors=True)
        shutil.copytree(state / "logs", previous)
    if state.exists():
        shutil.rmtree(state)
    return [p.name for p in running]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    rss_kib: int


def status() -> tuple[ClusterInfo | None, list[ComponentStatus], bool]:
    """(recorded info, live components with RSS, healthy)."""
    state = state_dir()
    info = load_info(state)
    live = [ComponentStatus(p.name, p.pid, procs.rss_kib(p.pid)) for p in procs.recorded(state)]
    healthy = info is not None and is_healthy(info)
    return info, live, healthy
