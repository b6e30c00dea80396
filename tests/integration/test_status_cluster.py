"""``dispatcher status`` against the real API server: each replica's ``/status`` is read
through the API server's pod proxy, Workflows are counted by the dispatcher's rule, and the
answer says why a class waits; ``--watch`` redraws in a real terminal (tmux).

The replica runs in this process (its ops server on this host's address); a Pod object stands
for it, bound to a Node kwok does not manage, with the Pod's IP set to this host's, so the API
server's proxy reaches the real ``/status`` as it reaches a pod on GKE.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from dispatcher.adapters.http import OpsServer
from dispatcher.local import identities, standin
from dispatcher.service.status import StatusBoard
from tests.integration.test_dispatch_cluster import settings_for, start_service
from tests.integration.test_loop_cluster import (  # noqa: F401 - fixtures
    Space,
    cleanup,
    held,
    make_space,
    order,
    poll,
    publish,
    with_caps,
)

REPO = Path(__file__).resolve().parents[2]
ROLE = "burst-dispatcher-operator"
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.pubsub,
    pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True),
]


@pytest.fixture
def stand_in_pod(k8s_cluster: Any) -> Iterator[Callable[[str, int], str]]:
    """A Running dispatcher Pod object whose IP is this host's; returns its name."""
    made: list[tuple[str, str]] = []

    def make(namespace: str, port: int) -> str:
        name = f"burst-dispatcher-status-{uuid.uuid4().hex[:6]}"
        with k8s_cluster.api_client() as api:
            standin.register(api, namespace=namespace, name=name, port=port)
        made.append((namespace, name))
        return name

    yield make
    with k8s_cluster.api_client() as api:
        for namespace, name in made:
            standin.remove(api, namespace=namespace, name=name)


@pytest.fixture
def operator_kubeconfig(k8s_cluster: Any, tmp_path: Path) -> Iterator[str]:
    """A member of an operator group bound to the SHIPPED operator Role (k8s/base/rbac.yaml)
    in the test namespace: what `dispatcher status` may do, and no more."""
    group = f"bd-status-operators-{uuid.uuid4().hex[:6]}"
    docs = list(yaml.safe_load_all((REPO / "k8s/base/rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == ROLE)
    role = {**role, "metadata": {"name": group, "namespace": k8s_cluster.namespace}}
    binding = {
        "metadata": {"name": group, "namespace": k8s_cluster.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": group},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }
    with k8s_cluster.api_client() as api:
        rbac = k8s.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(k8s_cluster.namespace, role)
        rbac.create_namespaced_role_binding(k8s_cluster.namespace, binding)
        path = identities.group_member_kubeconfig(
            api, admin_kubeconfig=k8s_cluster.kubeconfig, user=f"{group}-user", group=group,
            path=tmp_path / "operator.kubeconfig",
        )  # fmt: skip
    yield str(path)
    with k8s_cluster.api_client() as api:
        rbac = k8s.RbacAuthorizationV1Api(api)
        rbac.delete_namespaced_role_binding(group, k8s_cluster.namespace)
        rbac.delete_namespaced_role(group, k8s_cluster.namespace)


def status(config: Path, kubeconfig: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", "status", "--config", str(config),
         "--kubeconfig", kubeconfig, *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_status_reads_every_replica_through_the_pod_proxy_and_says_why_a_class_waits(
    make_space: Callable[..., Space],  # noqa: F811
    k8s_cluster: Any,
    pubsub_clients: Any,
    cleanup: list[str],  # noqa: F811
    stand_in_pod: Callable[[str, int], str],
    operator_kubeconfig: str,
    tmp_path: Path,
) -> None:
    space = make_space()
    cleanup.append(space.selector)
    base = settings_for(space.env(), k8s_cluster.namespace, pubsub_clients.project)
    settings = with_caps(
        base.model_copy(update={"service": base.service.model_copy(update={"lease_seconds": 3})}),
        small=0,
    )
    service, backend = start_service(
        settings, pubsub_clients, k8s_cluster.kubeconfig, f"{space.environment}-a"
    )
    board = StatusBoard(replica=f"{space.environment}-a", environment=space.environment)
    service.metrics.board = board
    ops = OpsServer(
        port=0,
        registry=service.metrics.registry,
        healthy=lambda: (True, "ok"),
        ready=lambda: (True, "ok"),
        extra={"/status": board.body},
    )
    ops.start()
    try:
        config = tmp_path / "config.yaml"
        # The config keeps port 8080: the command must ask on the pod's declared `http` port.
        assert settings.service.http_port != ops.port
        config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        pod = stand_in_pod(k8s_cluster.namespace, ops.port)
        publish(
            pubsub_clients, space.topic, *(order(f"st-{space.environment}-{i}") for i in range(3))
        )
        poll(lambda: held(service) == 3, 30, "three small orders held at a cap of 0")

        def small() -> dict[str, Any]:
            done = status(config, operator_kubeconfig, "-o", "json")
            assert done.returncode == 0, done.stderr
            document = json.loads(done.stdout)
            (replica,) = [r for r in document["replicas"] if r["pod"] == pod]
            assert replica["reachable"], replica
            (row,) = [c for c in document["classes"] if c["class"] == "small"]
            return row

        # A replica holds back while it joins (until its peers have seen it), then at the cap.
        row = poll(lambda: (r := small())["why"] == "at its cap" and r, 60, "held at the cap")
        assert row == {
            "class": "small", "waiting": None, "oldest_seconds": None, "held": 3, "in_flight": 0, "live": 0, "cap": 0,
            "created_per_minute": 0.0, "why": "at its cap",
        }  # fmt: skip
        service.apply(with_caps(settings, small=5))
        # The Workflows may finish within a second here: judge by what the replica made.
        row = poll(
            lambda: (r := small())["created_per_minute"] > 0 and r["held"] == 0 and r,
            60,
            "the held orders created",
        )
        assert row["cap"] == 5 and row["why"] == "no orders held", row
        if shutil.which("tmux"):
            _watch_in_a_terminal(config, operator_kubeconfig, tmp_path)
        elif os.environ.get("CI") == "true":
            pytest.fail("tmux is needed to test status --watch")
    finally:
        ops.stop()
        service.stop(grace=20)
        backend.close()


def _watch_in_a_terminal(config: Path, kubeconfig: str, tmp_path: Path) -> None:
    session = f"bd-status-{uuid.uuid4().hex[:6]}"
    command = (
        f"{sys.executable} -m dispatcher status --watch --interval 0.5 "
        f"--config {config} --kubeconfig {kubeconfig}; echo EXITED $?; sleep 30"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "30", command],
        check=True,
        env={**os.environ, "TMUX": ""},
    )
    try:

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip

        first = poll(lambda: "live / cap" in (s := screen()) and s, 60, "the table on screen")
        assert "small" in first and "replicas: 1 of" in first, first
        # Redrawn in place: one table on the screen however many refreshes happened.
        time.sleep(0)  # (no wait: the next poll sees a later refresh)
        later = poll(lambda: screen().count("live / cap") == 1 and screen(), 30, "a redraw")
        assert later.count("burst-dispatcher") >= 1
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        assert poll(lambda: "EXITED 0" in screen(), 30, "Ctrl-C ends it with exit 0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
