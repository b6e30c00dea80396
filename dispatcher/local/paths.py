"""Where the local stack's sources, binaries and run state live.

Why: the Go sources and build scripts of the local servers sit in the source checkout under
`servers/`, and each build script owns its cache key, so the binary directory is asked from
`build.sh --print` instead of recomputing the key here. The test cluster's state directory is
shared by the developer CLI and the pytest plugin so either can find (and reuse or stop) a
cluster the other started; the product's local stack keeps its own (`local_state_dir`), so a
test run never stops what a person brought up by hand, nor the other way round.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVERS_DIR = REPO_ROOT / "servers"
CLUSTER_DIR = SERVERS_DIR / "cluster"
BUILD_SCRIPT = CLUSTER_DIR / "build.sh"

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "workflow-controller",
    "argolint",
)


def cache_base() -> Path:
    """`${BURST_DISPATCHER_CACHE:-~/.cache/burst-dispatcher}`: every build and state lives here."""
    base = os.environ.get("BURST_DISPATCHER_CACHE") or str(Path.home() / ".cache/burst-dispatcher")
    return Path(base)


def cache_root() -> Path:
    """The cluster build's part of the cache: `<cache>/cluster`."""
    return cache_base() / "cluster"


def state_dir() -> Path:
    """Run state (pki, logs, pids, kubeconfig); override with BURST_CLUSTER_STATE_DIR."""
    override = os.environ.get("BURST_CLUSTER_STATE_DIR")
    return Path(override) if override else cache_root() / "run"


def local_state_dir() -> Path:
    """The local stack's own state (`<cache>/local`), apart from the test cluster's; override
    with BURST_LOCAL_STATE_DIR."""
    override = os.environ.get("BURST_LOCAL_STATE_DIR")
    return Path(override) if override else cache_base() / "local"


class NotBuiltError(RuntimeError):
    """The binaries for the pinned versions are not in the cache (run servers/cluster/build.sh)."""


def bin_dir() -> Path:
    """The directory with the built binaries; never builds (a cold build takes a quarter hour)."""
    if not BUILD_SCRIPT.is_file():
        raise NotBuiltError(f"{BUILD_SCRIPT} not found: the local stack needs a source checkout")
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise NotBuiltError(proc.stderr.strip() or f"build.sh --print exited {proc.returncode}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    missing = [name for name in BINARIES if not (path / name).is_file()]
    if missing:
        raise NotBuiltError(f"missing in {path}: {', '.join(missing)}")
    return path


def share_dir(bins: Path) -> Path:
    """Manifests build.sh copied out of the modules (Argo CRDs, kwok stages)."""
    return bins.parent / "share"
