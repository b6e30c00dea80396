"""Find the built kubectl and kustomize, and the CRDs the shipped overlays need.

Why a module: the versions are pinned once (servers/tools/versions.env, shared with
build-tools.sh); binaries come from the cluster build when it exists (its kubectl embeds
kustomize) or from the small tools build; KEDA's CRDs are read from its Go module and the
PodMonitoring stand-in from this package, instead of being copied into the repository, so they
can never drift. Nothing here skips or fails a test: it raises ToolUnavailable, and the tests
decide (tests/manifests/tools.py).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dispatcher.local.paths import SERVERS_DIR, cache_base

TOOLS_DIR = SERVERS_DIR / "tools"
BUILD_TOOLS = TOOLS_DIR / "build-tools.sh"


class ToolUnavailable(RuntimeError):
    """A tool or schema source cannot be had here; the message says why."""


def versions() -> dict[str, str]:
    """KEY=VALUE pairs of servers/tools/versions.env."""
    pairs: dict[str, str] = {}
    for line in (TOOLS_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def cache_root() -> Path:
    """The project cache (`${BURST_DISPATCHER_CACHE:-~/.cache/burst-dispatcher}`)."""
    return cache_base()


def cluster_bin(name: str) -> Path | None:
    """A binary built by servers/cluster/build.sh (newest cache key first), if any."""
    candidates = sorted(
        (cache_root() / "cluster").glob(f"*/bin/{name}"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    return next((p for p in candidates if os.access(p, os.X_OK)), None)


def built_kubectl() -> Path:
    """The kubectl servers/cluster/build.sh built; ToolUnavailable without it."""
    path = cluster_bin("kubectl")
    if path is None:
        raise ToolUnavailable("kubectl not built: bash servers/cluster/build.sh")
    return path


@functools.cache
def kustomize_command() -> tuple[str, ...]:
    """The pinned kustomize when built, else `kubectl kustomize` from the cluster build, else
    build the pinned one now (build-tools.sh, about a minute). The pinned one comes first so
    rendering does not change with whichever kustomize a kubectl happens to embed."""
    version = versions()["KUSTOMIZE_VERSION"]
    own = cache_root() / "tools" / f"kustomize-{version}" / "bin" / "kustomize"
    if own.is_file():
        return (str(own), "build")
    kubectl = cluster_bin("kubectl")
    if kubectl is not None:
        return (str(kubectl), "kustomize")
    if shutil.which("go") is None:
        raise ToolUnavailable("no kustomize, no kubectl and no Go toolchain to build one")
    proc = subprocess.run(
        ["bash", str(BUILD_TOOLS)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0 or not own.is_file():
        raise ToolUnavailable(f"build-tools.sh failed: {proc.stderr.strip()[-2000:]}")
    return (str(own), "build")


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
        cwd=TOOLS_DIR,
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ToolUnavailable(f"go mod download {module}@{version}: {proc.stderr.strip()}") from exc
    if info.get("Error") or not info.get("Dir"):
        raise ToolUnavailable(f"go mod download {module}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def keda_crds() -> list[dict[str, Any]]:
    """KEDA's CRDs at the pinned version, from its Go module."""
    root = go_module_dir("github.com/kedacore/keda/v2", versions()["KEDA_VERSION"])
    return [
        doc
        for path in sorted((root / "config" / "crd" / "bases").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def podmonitoring_crd() -> dict[str, Any]:
    """Managed Prometheus's PodMonitoring: a stand-in with the fields the project uses (the
    real definition is not served by any registry reachable here; see the file's header)."""
    text = resources.files("dispatcher.local").joinpath("crds/podmonitorings.yaml").read_text()
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd
