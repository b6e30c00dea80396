"""Run every shell block of docs/deploy.md and docs/environments.md, in order, on the test
cluster, as an operator would from a checkout.

What runs for real: `kubectl` (the one servers/cluster/build.sh built, against the test cluster),
`kubectl kustomize`/`-k`, `dispatcher` (this checkout's), `python3` and the shell itself. What
runs against stand-ins (tests/docs/standin.py): `gcloud`, `docker`, `helm` — they accept only
the command shapes the guide may use, check the arguments and record the calls, which are
checked again below. What the test provides because the real thing cannot be here, each
marked where it happens:

- Config Connector: its real CRDs are installed, plus the `ConfigConnector` object the add-on's
  install leaves (namespaced mode); fake_config_connector.py marks objects Ready, so the
  guide's `kubectl wait` commands run for real against that status.
- KEDA: what `helm install keda` would bring that the guide's later steps need, its CRDs.
- Argo: the test cluster's own controller must not get the production settings, so step 4
  patches and restarts a stand-in controller (a ConfigMap and a Deployment with the install's
  names) in a namespace of this test, through the guide's own `ARGO_NAMESPACE`.

A failing command fails the test with the block's place in the document.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docs import markdown
from tests.docs.fake_config_connector import FakeConfigConnector
from tests.manifests import tools

pytestmark = pytest.mark.cluster

GUIDES = [markdown.REPO / "docs" / "deploy.md", markdown.REPO / "docs" / "environments.md"]
ENV = "dev"
INFRA_NAMESPACE = f"burst-dispatcher-infra-{ENV}"
STANDINS = ("gcloud", "docker", "helm")
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"
)


def script(blocks: list[markdown.Block]) -> str:
    """One bash script: each block after a marker, so a failure names its block."""
    lines = ["set -euo pipefail", "trap 'echo \"FAILED: block at $BLOCK\" >&2' ERR"]
    for block in blocks:
        lines += [f"BLOCK={block.where}", f"echo '== {block.where}' >&2", block.text]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return tools.built_kubectl()


@pytest.fixture(scope="module")
def crds() -> dict[str, list[dict[str, Any]]]:
    try:
        return {
            "kcc": list(tools.kcc_crds()),
            "keda": tools.keda_crds(),
            "gmp": [tools.podmonitoring_crd()],
        }
    except tools.ToolUnavailable as exc:
        tools.unavailable(str(exc))


def _kubectl(kubectl: Path, kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def argo_standin(k8s_cluster: Any, kubectl: Path) -> Iterator[str]:
    """Stand-in for an Argo install: its ConfigMap and controller Deployment, by their names."""
    namespace = f"bd-docs-argo-{uuid.uuid4().hex[:8]}"
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "workflow-controller-configmap", "namespace": namespace},
            "data": {"metricsConfig": "enabled: false\n"},
        },
        _controller_standin(namespace),
    ]
    _kubectl(
        kubectl,
        k8s_cluster.kubeconfig,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objects),
    )
    try:
        yield namespace
    finally:
        _kubectl(kubectl, k8s_cluster.kubeconfig, "delete", "namespace", namespace, "--wait=false")


def _controller_standin(namespace: str) -> dict[str, Any]:
    labels = {"app": "workflow-controller"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "workflow-controller", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "controller", "image": "argo-standin:0"}]},
            },
        },
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout: the guide writes files where it runs (orders.jsonl, wf/)."""
    target = tmp_path_factory.mktemp("checkout") / "burst-dispatcher"
    shutil.copytree(markdown.REPO, target, ignore=IGNORE)
    return target


def _path_dir(tmp: Path) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    standin = Path(__file__).with_name("standin.py")
    for tool in STANDINS:
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    return bin_dir


def test_the_guides_run_as_written(
    k8s_cluster: Any,
    kubectl: Path,
    crds: dict[str, list[dict[str, Any]]],
    argo_standin: str,
    workdir: Path,
    tmp_path: Path,
) -> None:
    kubeconfig = k8s_cluster.kubeconfig
    # What the Config Connector add-on, `helm install keda` and GKE's Managed Prometheus
    # would have installed.
    tools.install_crds(kubectl, kubeconfig, crds["kcc"] + crds["keda"] + crds["gmp"])
    _kubectl(
        kubectl,
        kubeconfig,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=yaml.safe_dump(
            {
                "apiVersion": "core.cnrm.cloud.google.com/v1beta1",
                "kind": "ConfigConnector",
                "metadata": {"name": "configconnector.core.cnrm.cloud.google.com"},
                "spec": {"mode": "namespaced"},
            }
        ),
    )
    log = tmp_path / "calls.jsonl"
    env = {
        "PATH": os.pathsep.join(
            [
                str(_path_dir(tmp_path)),
                str(kubectl.parent),
                str(Path(sys.executable).parent),
                "/usr/bin",
                "/bin",
            ]
        ),
        "HOME": str(tmp_path),
        "KUBECONFIG": kubeconfig,
        "STANDIN_LOG": str(log),
        "STANDIN_KEDA_VERSION": tools.versions()["KEDA_VERSION"],
        "ARGO_NAMESPACE": argo_standin,  # step 4 acts on the stand-in controller
        "ENV": ENV,  # environments.md's blocks run for the environment deploy.md deployed
        "CI": os.environ.get("CI", ""),
    }
    blocks = [b for guide in GUIDES for b in markdown.shell_blocks(guide)]
    assert len(blocks) >= 10, [b.where for b in blocks]
    try:
        with FakeConfigConnector(k8s_cluster.api_client(), INFRA_NAMESPACE, crds["kcc"]) as fake:
            proc = subprocess.run(
                ["bash", "-c", script(blocks)],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
    finally:
        # The infra namespace is this test's alone; the app overlay's objects stay (they are
        # the shipped objects in the shared namespace, which other tests use too).
        _kubectl(kubectl, kubeconfig, "delete", "namespace", INFRA_NAMESPACE, "--ignore-not-found")
    assert proc.returncode == 0, f"{proc.stderr[-6000:]}\n--- stdout:\n{proc.stdout[-3000:]}"
    assert not fake.errors, fake.errors
    infra = tools.render(tools.OVERLAYS[f"infra-{ENV}"])
    declared = {(o["kind"], o["metadata"]["name"]) for o in infra if o["kind"] != "Namespace"}
    assert declared <= fake.marked, "every object the overlay declares was applied and waited for"
    _check_calls([json.loads(line) for line in log.read_text().splitlines()])
    # Step 4 merged the project's settings into the controller's ConfigMap, keeping the rest.
    merged = json.loads(
        _kubectl(
            kubectl,
            kubeconfig,
            "-n",
            argo_standin,
            "get",
            "configmap",
            "workflow-controller-configmap",
            "-o",
            "json",
        )
    )["data"]
    wanted = yaml.safe_load(
        (markdown.REPO / "k8s/argo/workflow-controller-configmap.yaml").read_text()
    )
    assert merged == {"metricsConfig": "enabled: false\n", **wanted["data"]}


def _check_calls(calls: list[dict[str, Any]]) -> None:
    """What the stand-ins recorded: the guide's Google-side steps happened, in a working order."""
    commands = [" ".join([c["argv"][0], *c["command"]]) for c in calls]
    for expected in (
        "gcloud services enable",
        "gcloud iam service-accounts create",
        "gcloud iam service-accounts add-iam-policy-binding",
        "gcloud container clusters get-credentials",
        "helm install",
        "gcloud auth configure-docker",
        "docker build",
        "docker push",
        "gcloud pubsub topics publish",
        "gcloud pubsub subscriptions pull",
    ):
        assert expected in commands, f"the guide no longer runs `{expected}`"
    assert commands.index("gcloud auth configure-docker") < commands.index("docker push")
    wi = next(
        c
        for c in calls
        if c["command"][:2] == ["iam", "service-accounts"]
        and c["command"][2] == "add-iam-policy-binding"
    )
    assert wi["flags"]["--member"].endswith(
        f"[cnrm-system/cnrm-controller-manager-{INFRA_NAMESPACE}]"
    )
    (context,) = tools.find(tools.render(tools.OVERLAYS[f"infra-{ENV}"]), "ConfigConnectorContext")
    assert wi["args"] == [context["spec"]["googleServiceAccount"]], "the account the context names"
