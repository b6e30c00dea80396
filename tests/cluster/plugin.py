"""pytest plugin: the session fixture `k8s_cluster` (registered in tests/conftest.py).

Why: cluster tests must run against a real API server and Argo controller, yet a laptop without
the (slow to build) binaries should skip them, while CI (CI=true) must fail loudly instead of
silently skipping. Order: BURST_TEST_KUBECONFIG (an existing cluster) -> a healthy cluster already
running in the state dir (reused) -> start one from the built binaries -> skip locally / fail in
CI. A cluster a test session started is stopped when the last session using it ends (sessions
register in the state dir); one started by `python -m tests.cluster up` is left running. Starting,
reusing and stopping are dispatcher.local.cluster's. Never builds: run
`bash servers/cluster/build.sh` first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from dispatcher.local import cluster
from dispatcher.local.paths import NotBuiltError, bin_dir


@dataclass(frozen=True)
class K8sCluster:
    """Handle the tests get: kubeconfig path, the dispatcher's namespace, API clients."""

    kubeconfig: str
    namespace: str
    started_here: bool

    def api_client(self) -> k8s.ApiClient:
        """A new ApiClient (callers close it, or use it as a context manager)."""
        return k8s_config.new_client_from_config(config_file=self.kubeconfig)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cluster: needs the local test cluster (kube-apiserver, etcd, kwok, Argo controller)",
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"cluster tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster_bin_dir() -> Path:
    """The built binaries (kubectl, argolint, ...); skip locally / fail in CI if not built."""
    try:
        return bin_dir()
    except NotBuiltError as exc:
        _unavailable(f"cluster binaries not built: {exc}")
        raise  # unreachable: skip/fail raise


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[K8sCluster]:
    external = os.environ.get("BURST_TEST_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            _unavailable(f"BURST_TEST_KUBECONFIG={external} does not exist")
        yield K8sCluster(
            kubeconfig=external,
            namespace=os.environ.get("BURST_TEST_NAMESPACE", cluster.NAMESPACE),
            started_here=False,
        )
        return
    try:
        info = cluster.attach(os.getpid())
    except NotBuiltError as exc:
        _unavailable(f"cluster binaries not built: {exc}")
        return
    try:
        yield K8sCluster(info.kubeconfig, info.namespace, started_here=info.started_by == "pytest")
    finally:
        cluster.detach(info, os.getpid())
