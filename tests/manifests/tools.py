"""What the manifest tests need around dispatcher.local.tools: rendered overlays by name,
object lookups, Config Connector's CRDs, and skipping (or failing in CI) without a tool.

Why a module: dispatcher.local.tools finds the pinned kubectl/kustomize and KEDA's CRDs for the
product's local stack and raises ToolUnavailable; the tests turn that into a skip on a developer
machine and a failure under CI=true. Config Connector's CRDs (../shared/crds, never copied into
the repository) matter only to the tests that apply the infra overlays.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import yaml

from dispatcher.local import tools as local_tools
from dispatcher.local.tools import ToolUnavailable as ToolUnavailable
from dispatcher.local.tools import cache_root as cache_root
from dispatcher.local.tools import cluster_bin as cluster_bin
from dispatcher.local.tools import go_module_dir as go_module_dir
from dispatcher.local.tools import keda_crds as keda_crds
from dispatcher.local.tools import kustomize_command as kustomize_command
from dispatcher.local.tools import podmonitoring_crd as podmonitoring_crd
from dispatcher.local.tools import versions as versions

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
K8S = REPO / "k8s"
GOLDEN = HERE / "golden"

# Every kustomization that is applied somewhere, by golden-file name.
OVERLAYS: dict[str, Path] = {
    "dev": K8S / "overlays" / "dev",
    "staging": K8S / "overlays" / "staging",
    "prod": K8S / "overlays" / "prod",
    "infra-dev": K8S / "infra" / "overlays" / "dev",
    "infra-staging": K8S / "infra" / "overlays" / "staging",
    "infra-prod": K8S / "infra" / "overlays" / "prod",
}
ENVIRONMENTS = ("dev", "staging", "prod")


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail in CI (CI=true), where a silent skip would hide a
    missing install step."""
    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"needed in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def render_text(path: Path) -> str:
    """The kustomize output for one kustomization directory (cached per session)."""
    proc = subprocess.run(
        [*kustomize_command(), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kustomize failed for {path}:\n{proc.stderr}")
    return proc.stdout


def render(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render_text(path)) if doc]


def built_kubectl() -> Path:
    """The kubectl servers/cluster/build.sh built; skips, or fails in CI, without it."""
    try:
        return local_tools.built_kubectl()
    except ToolUnavailable as exc:
        unavailable(str(exc))


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The objects of one overlay by name (``OVERLAYS``); skips, or fails in CI, without the
    tools."""
    try:
        return render(OVERLAYS[overlay])
    except ToolUnavailable as exc:
        unavailable(str(exc))


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objs, kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected exactly one {kind}/{name}, found {len(found)}")
    return found[0]


def kcc_crds_dir() -> Path:
    """The real Config Connector CRDs (../shared/crds/config-connector beside the clone, as in
    CI; BURST_DISPATCHER_KCC_CRDS overrides). The Go module proxy does not serve them."""
    override = os.environ.get("BURST_DISPATCHER_KCC_CRDS")
    path = Path(override) if override else REPO.parent / "shared" / "crds" / "config-connector"
    if not path.is_dir():
        raise ToolUnavailable(
            f"Config Connector CRDs not found at {path} (see ../shared/crds/README.md)"
        )
    return path


@functools.cache
def kcc_crds() -> tuple[dict[str, Any], ...]:
    return tuple(
        doc
        for path in sorted(kcc_crds_dir().glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    )


def install_crds(kubectl: Path, kubeconfig: str, crds: list[dict[str, Any]]) -> None:
    """Server-side apply CRDs into a cluster (idempotent, so concurrent test sessions may
    share it) and wait until the API server serves them."""
    base = [str(kubectl), f"--kubeconfig={kubeconfig}"]
    proc = subprocess.run(
        [
            *base,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=burst-dispatcher-tests",
            "-f",
            "-",
        ],
        input=yaml.safe_dump_all(crds),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"installing CRDs failed:\n{proc.stderr}")
    names = [f"crd/{c['metadata']['name']}" for c in crds]
    proc = subprocess.run(
        [*base, "wait", "--for=condition=Established", "--timeout=60s", *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"CRDs not Established:\n{proc.stderr}")
