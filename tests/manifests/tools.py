"""Locate the tools and schema sources the manifest tests need, and render overlays.

Why a module: the versions are pinned once (versions.env, shared with build-tools.sh), binaries
come from the cluster build when it exists (its kubectl embeds kustomize) or from our own small
build, and CRDs are read at test time (KEDA's from the Go module cache, Config Connector's from
../shared/crds) instead of being copied into the repository, so they can never drift.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import yaml

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


class ToolUnavailable(RuntimeError):
    """A tool or schema source cannot be had here; the message says why (tests skip on it)."""


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail in CI (CI=true), where a silent skip would hide a
    missing install step."""
    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"needed in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def versions() -> dict[str, str]:
    """KEY=VALUE pairs of versions.env."""
    pairs: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def cache_root() -> Path:
    base = os.environ.get("BURST_DISPATCHER_CACHE") or str(Path.home() / ".cache/burst-dispatcher")
    return Path(base)


def cluster_bin(name: str) -> Path | None:
    """A binary built by tests/cluster/build.sh (newest cache key first), if any."""
    candidates = sorted(
        (cache_root() / "cluster").glob(f"*/bin/{name}"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    return next((p for p in candidates if os.access(p, os.X_OK)), None)


@functools.cache
def kustomize_command() -> tuple[str, ...]:
    """The pinned kustomize when built, else `kubectl kustomize` from the cluster build, else
    build the pinned one now (build-tools.sh, about a minute). The pinned one comes first so
    rendering does not change with whichever kustomize a kubectl happens to embed."""
    own = (
        cache_root()
        / "tools"
        / f"kustomize-{versions()['KUSTOMIZE_VERSION']}"
        / "bin"
        / "kustomize"
    )
    if own.is_file():
        return (str(own), "build")
    kubectl = cluster_bin("kubectl")
    if kubectl is not None:
        return (str(kubectl), "kustomize")
    if shutil.which("go") is None:
        raise ToolUnavailable("no kustomize, no kubectl and no Go toolchain to build one")
    proc = subprocess.run(
        ["bash", str(HERE / "build-tools.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0 or not own.is_file():
        raise ToolUnavailable(f"build-tools.sh failed: {proc.stderr.strip()[-2000:]}")
    return (str(own), "build")


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
    """The kubectl tests/cluster/build.sh built; skips, or fails in CI, without it."""
    path = cluster_bin("kubectl")
    if path is None:
        unavailable("kubectl not built: bash tests/cluster/build.sh")
    return path


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


# --- Go module cache: CRD sources ------------------------------------------------------------


@functools.cache
def go_module_dir(module: str, version: str) -> Path:
    """The extracted module in the Go module cache (downloads it once through the proxy)."""
    if shutil.which("go") is None:
        raise ToolUnavailable("no Go toolchain to fetch CRD modules")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=HERE,
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ToolUnavailable(f"go mod download {module}@{version}: {proc.stderr.strip()}") from exc
    if info.get("Error") or not info.get("Dir"):
        raise ToolUnavailable(f"go mod download {module}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def keda_crds() -> list[dict[str, Any]]:
    root = go_module_dir("github.com/kedacore/keda/v2", versions()["KEDA_VERSION"])
    return [
        doc
        for path in sorted((root / "config" / "crd" / "bases").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


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


def podmonitoring_crd() -> dict[str, Any]:
    """Managed Prometheus's PodMonitoring: a stand-in with the fields the project uses (the
    real definition is not served by any registry reachable here; see the file's header)."""
    path = REPO / "tests" / "integration" / "crds" / "podmonitorings.yaml"
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd


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
