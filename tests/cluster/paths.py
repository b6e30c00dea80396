"""Where the cluster's binaries and run state live.

Why: build.sh owns the cache key (hash of the pinned versions), so the binary directory is asked
from `build.sh --print` instead of recomputing the key here; the state directory is shared by the
CLI and the pytest plugin so either can find (and reuse or stop) a cluster the other started.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
REPO_ROOT = CLUSTER_DIR.parent.parent
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


def cache_root() -> Path:
    """`${BURST_DISPATCHER_CACHE:-~/.cache/burst-dispatcher}/cluster`."""
    base = os.environ.get("BURST_DISPATCHER_CACHE") or str(Path.home() / ".cache/burst-dispatcher")
    return Path(base) / "cluster"


def state_dir() -> Path:
    """Run state (pki, logs, pids, kubeconfig); override with BURST_CLUSTER_STATE_DIR."""
    override = os.environ.get("BURST_CLUSTER_STATE_DIR")
    return Path(override) if override else cache_root() / "run"


class NotBuiltError(RuntimeError):
    """The binaries for the pinned versions are not in the cache (run build.sh)."""


def bin_dir() -> Path:
    """The directory with the built binaries; never builds (that takes most of an hour)."""
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
