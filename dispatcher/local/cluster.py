"""Bring the local cluster up and down, and find one that is running.

Why: the CLI, the pytest plugin and the local stack must get the same, fully working cluster or
a clear error; a cluster is recorded in its state dir (cluster.json, pid files) so any of them
can reuse or stop one another started, and up/down/attach/detach are serialised across
processes by a lock file beside the state dir. The start sequence is cluster_start.py; the
objects a new cluster holds are cluster_objects.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from dispatcher.local import autoscaler, procs
from dispatcher.local.certs import tls_context
from dispatcher.local.cluster_objects import ARGO_NAMESPACE, NAMESPACE, apply_base_rbac
from dispatcher.local.cluster_start import KUBECONFIG, launch
from dispatcher.local.paths import bin_dir, state_dir

__all__ = [
    "ARGO_NAMESPACE",
    "COMPONENTS",
    "KUBECONFIG",
    "NAMESPACE",
    "ClusterInfo",
    "ComponentStatus",
    "apply_base_rbac",
    "attach",
    "components",
    "detach",
    "down",
    "is_healthy",
    "load_info",
    "state_override",
    "status",
    "up",
]

STATE_FILE = "cluster.json"


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
    #: Nodes come and go with Karpenter (autoscaler.py) instead of fixed pool nodes.
    autoscaling: bool = False

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


def is_healthy(info: ClusterInfo) -> bool:
    """All recorded processes alive and the apiserver answering /readyz."""
    state = Path(info.state)
    running = {p.name for p in procs.recorded(state)}
    if not set(components(info)) <= running:
        return False
    return procs.http_ok(f"{info.server}/readyz", tls_context(state / "pki"))


COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "workflow-controller",
)
AUTOSCALER = autoscaler.NAME


def components(info: ClusterInfo | None) -> tuple[str, ...]:
    """The processes a healthy cluster runs: COMPONENTS, and Karpenter when it autoscales."""
    return COMPONENTS + ((AUTOSCALER,) if info is not None and info.autoscaling else ())


@contextlib.contextmanager
def state_override(state: Path) -> Iterator[None]:
    """Run the cluster code against another state dir (BURST_CLUSTER_STATE_DIR) for a while."""
    previous = os.environ.get("BURST_CLUSTER_STATE_DIR")
    os.environ["BURST_CLUSTER_STATE_DIR"] = str(state)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("BURST_CLUSTER_STATE_DIR", None)
        else:
            os.environ["BURST_CLUSTER_STATE_DIR"] = previous


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


def up(
    quiet: bool = False,
    started_by: str = "cli",
    *,
    autoscaling: list[dict[str, Any]] | None = None,
) -> ClusterInfo:
    """Start a cluster in the state dir, or return the healthy one already running there.

    `autoscaling`: GKE ContainerNodePool objects; the cluster then has no fixed nodes and
    Karpenter makes nodes for those pools on demand. A running cluster of the other kind is
    an error (its users would lose it), not a restart."""
    with _locked():
        return _up_locked(quiet, started_by, autoscaling)


def down() -> list[str]:
    """Stop every recorded process and remove the state dir. Returns the names stopped."""
    with _locked():
        return _down_locked()


def attach(user: int, *, autoscaling: list[dict[str, Any]] | None = None) -> ClusterInfo:
    """For test sessions: reuse or start (started_by=pytest) a cluster and register as a user."""
    with _locked():
        info = _up_locked(True, "pytest", autoscaling)
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


def _up_locked(
    quiet: bool, started_by: str, autoscaling: list[dict[str, Any]] | None
) -> ClusterInfo:
    state = state_dir()
    existing = load_info(state)
    if existing is not None and is_healthy(existing):
        if existing.autoscaling != (autoscaling is not None):
            kind = "an autoscaling" if existing.autoscaling else "a fixed-node"
            raise RuntimeError(
                f"{kind} cluster runs in {state}; take it down first (`down`), then `up` again"
            )
        return existing
    _down_locked(keep_logs=True)  # leftovers of a dead or half-started cluster
    bins = bin_dir()
    state.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - t0:5.1f}s] {msg}", flush=True)

    server = launch(bins, state, say, pools=autoscaling)
    info = ClusterInfo(
        state=str(state),
        kubeconfig=str(state / KUBECONFIG),
        server=server,
        namespace=NAMESPACE,
        argo_namespace=ARGO_NAMESPACE,
        bin_dir=str(bins),
        started_at=time.time(),
        started_by=started_by,
        autoscaling=autoscaling is not None,
    )
    (state / STATE_FILE).write_text(json.dumps(asdict(info), indent=2))
    say("cluster up")
    return info


def _down_locked(keep_logs: bool = False) -> list[str]:
    state = state_dir()
    running = procs.recorded(state)
    # Clients first, then the apiserver, etcd last, so nothing logs a storm of connection errors.
    # Argo's controller does not exit on SIGTERM in any useful time: it gets SIGKILL after 2s.
    tiers: tuple[tuple[set[str], float], ...] = (
        ({"workflow-controller", AUTOSCALER}, 2.0),
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
