"""The shipped overlay on the local cluster, and the pieces of GKE the local cluster lacks.

Why a module of its own: the local stack and the run-as-deployed rehearsal
(tests/integration/test_rehearsal.py) must run the product the way it ships, so everything here
either feeds it the shipped objects unchanged (rendering with the built kubectl's kustomize,
server-side apply as a deployer does) or stands in for a piece of GKE that the local cluster
lacks, doing exactly that piece's job:

- identities (identities.py): the shipped ServiceAccount's token and an operator's
  certificate in the shipped operator group; neither is `system:masters`;
- nodes: kwok Nodes shaped like the environment's Config Connector node pools (machine type,
  spot, taints), so the shipped classes' requests meet the machines they will meet on GKE;
- the kubelet's ConfigMap volume: the rendered ConfigMap's file on disk, rewritten atomically
  whenever the ConfigMap changes, which is what the dispatcher's live reload reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from dispatcher.local import nodepools, nodes, tools

REPO = Path(__file__).resolve().parents[2]
FIELD_MANAGER = "burst-dispatcher-deploy"


class CommandFailed(RuntimeError):
    """A command (kubectl, openssl) exited non-zero; the message holds its stderr."""


def run(args: list[str], *, stdin: str | None = None, timeout: float = 120) -> str:
    """Run a command; its stdout, or CommandFailed with its stderr."""
    proc = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(args[:4])} ... exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def run_status(args: list[str]) -> int:
    """A command's exit status (`kubectl auth can-i` answers with it)."""
    return subprocess.run(args, capture_output=True, timeout=60, check=False).returncode


def render(kubectl: Path, overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize <overlay>`, as docs/deploy.md renders before applying."""
    text = run([str(kubectl), "kustomize", str(REPO / overlay)])
    return [doc for doc in yaml.safe_load_all(text) if doc]


def apply_args(kubectl: Path, kubeconfig: str, *, force: bool, dry_run: bool) -> list[str]:
    """Server-side apply under the deployer's field manager (force only to take objects over)."""
    args = [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "--server-side"]
    args += [f"--field-manager={FIELD_MANAGER}", "-f", "-"]
    if force:
        args.append("--force-conflicts")
    if dry_run:
        args.append("--dry-run=server")
    return args


def apply(
    kubectl: Path, kubeconfig: str, docs: list[dict[str, Any]], *, force: bool = False
) -> str:
    """Server-side apply these objects as the deployer; kubectl's report of what changed."""
    args = apply_args(kubectl, kubeconfig, force=force, dry_run=False)
    return run(args, stdin=yaml.safe_dump_all(docs))


def dry_run(
    kubectl: Path, kubeconfig: str, docs: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """A server-side dry-run apply (no force); stdout is the would-be objects as JSON."""
    return subprocess.run(
        [*apply_args(kubectl, kubeconfig, force=False, dry_run=True), "-o", "json"],
        input=yaml.safe_dump_all(docs),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def delete_workflows(api: k8s.ApiClient, namespace: str, orders: dict[str, str]) -> None:
    """Delete the Workflows that hold any of these orders (the others are not ours)."""
    objects = k8s.CustomObjectsApi(api)
    listing = objects.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "workflows"
    )
    for body in listing["items"]:
        ids = (body["metadata"].get("annotations") or {}).get("burst-dispatcher.io/order-ids")
        if ids and any(i in orders for i in yaml.safe_load(ids)):
            try:
                objects.delete_namespaced_custom_object(
                    "argoproj.io", "v1alpha1", namespace, "workflows", body["metadata"]["name"]
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise


def poll(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    """Call check() until it is true; TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def wait_established(api: k8s.ApiClient, names: list[str]) -> None:
    """Wait until the API server serves these CRDs."""
    ext = k8s.ApiextensionsV1Api(api)

    def established() -> bool:
        for name in names:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    poll(f"CRDs {names} Established", established, 60)


def install_crds(admin: k8s.ApiClient, kubectl: Path, kubeconfig: str) -> None:
    """KEDA's CRDs from its module, and the PodMonitoring stand-in (crds/podmonitorings.yaml);
    tools.ToolUnavailable when KEDA's module cannot be had."""
    crds = [*tools.keda_crds(), tools.podmonitoring_crd()]
    apply(kubectl, kubeconfig, crds, force=True)
    wait_established(admin, [c["metadata"]["name"] for c in crds])


def cli(args: list[str], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """`dispatcher ARGS` as its own process, with this kubeconfig's identity."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "DISPATCHER_LOG_FORMAT": "json"}
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# --- nodes like the environment's pools ---------------------------------------------------------


def pool_nodes(infra: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """One kwok Node per Config Connector node pool, with its machine, spot label and taints."""
    made = []
    for pool in infra:
        if pool["kind"] != "ContainerNodePool":
            continue
        shape = nodepools.pool_machine(pool)
        spot = nodepools.pool_spot(pool)
        node = nodes.node_manifest(nodes.Pool(pool["metadata"]["name"], shape, spot=spot), 0)
        name = f"{prefix}-{pool['metadata']['name']}"
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        # kwok manages it (annotation); the cluster tool's own `type=kwok` set stays as it was.
        node["metadata"]["labels"]["type"] = "kwok-rehearsal"
        node["spec"]["taints"] = nodepools.pool_taints(pool)
        made.append(node)
    return made


def delete_nodes(api: k8s.ApiClient, made: list[dict[str, Any]]) -> None:
    """Delete these Nodes (gone already is fine)."""
    core = k8s.CoreV1Api(api)
    for node in made:
        try:
            core.delete_node(node["metadata"]["name"])
        except ApiException as exc:
            if exc.status != 404:
                raise


def ensure_nodes(api: k8s.ApiClient, wanted: list[dict[str, Any]]) -> None:
    """Create these Nodes unless they exist, and wait until kwok reports them Ready."""
    core = k8s.CoreV1Api(api)
    for node in wanted:
        try:
            core.create_node(node)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def ready() -> bool:
        for node in wanted:
            conditions = core.read_node(node["metadata"]["name"]).status.conditions or []
            if not any(c.type == "Ready" and c.status == "True" for c in conditions):
                return False
        return True

    poll("rehearsal nodes Ready", ready, 60)


# --- the kubelet's ConfigMap volume -------------------------------------------------------------


class MountedConfigMap:
    """Keeps `<dir>/<key>` equal to a ConfigMap's key, swapping the file atomically on change."""

    def __init__(self, api: k8s.ApiClient, *, namespace: str, name: str, directory: Path) -> None:
        self._core = k8s.CoreV1Api(api)
        self._namespace, self._name, self.directory = namespace, name, directory
        self.updates = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MountedConfigMap:
        self.directory.mkdir(parents=True, exist_ok=True)
        found = self._core.read_namespaced_config_map(self._name, self._namespace)
        self._write(found.data or {})
        self._version = str(found.metadata.resource_version)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _write(self, data: dict[str, str]) -> None:
        for key, text in data.items():
            staged = self.directory / f".{key}.new"
            staged.write_text(text)
            os.replace(staged, self.directory / key)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except ApiException as exc:
                if exc.status != 410:
                    raise
                found = self._core.read_namespaced_config_map(self._name, self._namespace)
                self._write(found.data or {})
                self._version = str(found.metadata.resource_version)

    def _follow(self) -> None:
        stream = k8s_watch.Watch().stream(
            self._core.list_namespaced_config_map,
            self._namespace,
            field_selector=f"metadata.name={self._name}",
            resource_version=self._version,
            timeout_seconds=5,
        )
        for event in stream:
            obj = event["object"]
            self._version = str(obj.metadata.resource_version)
            if event["type"] == "MODIFIED":
                self._write(obj.data or {})
                self.updates += 1
