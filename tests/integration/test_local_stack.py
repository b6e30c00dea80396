"""`dispatcher local up | status | publish | down`, run as a user runs them, on the real servers.

The stack lives in a state dir of this test's own (BURST_LOCAL_STATE_DIR), so a developer's
running stack and the test cluster are left alone. Judged from the outside: the printed summary
accounts for every valid order of the swarm in a Succeeded Workflow and the malformed ones as
dead letters; `up` again reuses the same processes; the export lines `status` prints point
`limits status` and `dead-letter inspect` at the stack; a swarm that cannot finish in time fails
the command; and after `down` no process the stack started is alive and its state is gone.

The stack runs with `--autoscaling` (one cluster start serves both; the README's own `local up`
in CI runs the fixed-node default): the dev pools start at zero nodes, the swarm scales the pools
its classes use from zero, every pod of a Workflow ran on its class's pool or its fallback pool
(the node it ran on, from the Workflow's status, mapped to its pool while the node existed), and
every pool is back at zero nodes after the swarm.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from dispatcher.local import autoscaler, paths, pubsub
from dispatcher.local.node_log import NodeLog, wait_for_zero
from dispatcher.local.nodes import POOL_LABEL
from dispatcher.local.procs import pid_alive
from dispatcher.operator.examples import example_orders
from tests.manifests import tools

pytestmark = [pytest.mark.cluster, pytest.mark.pubsub, pytest.mark.slow]

ORDERS, SEED, INVALID = 30, 4242, 0.05
# Pods end in 0.5 s (no economics profile: its run times would make this minutes).
AUTOSCALING = ["--autoscaling", "--no-economics"]
CONSOLIDATE_AFTER = "5s"
# Karpenter removes an empty node ~25 s after consolidateAfter here (docs/test-cluster.md).
BACK_TO_ZERO_TIMEOUT = 150.0


def _local(
    args: list[str], env: dict[str, str], timeout: float = 900, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", "local", *args], input=stdin,
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip


def _all_pids(state: Path) -> set[int]:
    """Every pid file of the stack: its daemons and the cluster's components."""
    return {
        int(p.read_text().split()[0])
        for p in [*state.glob("pids/*.pid"), *state.glob("cluster/pids/*.pid")]
    }


def _row(summary: str, name: str) -> list[int]:
    match = re.search(rf"^\W*{name}\W+(\d+)\W+(\d+)\W+(\d+)\W+(\d+)", summary, re.MULTILINE)
    assert match, f"no {name} row in:\n{summary}"
    return [int(g) for g in match.groups()]


def test_local_up_runs_a_swarm_and_down_leaves_nothing(tmp_path: Path) -> None:
    try:
        paths.bin_dir()
    except paths.NotBuiltError as exc:
        tools.unavailable(f"cluster binaries not built: {exc}")
    if pubsub.binary("fast") is None:
        tools.unavailable("fastsub not built: bash servers/pubsub/build.sh")
    try:
        autoscaler.bin_dir()
    except paths.NotBuiltError as exc:
        tools.unavailable(f"autoscaler not built: {exc}")
    state = tmp_path / "local"
    # A shorter consolidation delay than the default 15 s: the same mechanism, less CI time.
    env = {
        **os.environ,
        "BURST_LOCAL_STATE_DIR": str(state),
        "COLUMNS": "160",
        "BURST_CLUSTER_CONSOLIDATE_AFTER": CONSOLIDATE_AFTER,
    }
    for key in ("KUBECONFIG", "PUBSUB_EMULATOR_HOST", "BURST_CLUSTER_STATE_DIR"):
        env.pop(key, None)
    lines = list(example_orders(ORDERS, seed=SEED, invalid_share=INVALID))
    valid = sum(1 for line in lines if line.startswith('{"order_id":"ord-'))
    try:
        cold = time.monotonic()
        first_up = _local(["up", *AUTOSCALING, "--orders", "0"], env)
        cold = time.monotonic() - cold
        assert first_up.returncode == 0, first_up.stdout + first_up.stderr
        with k8s_config.new_client_from_config(str(state / "cluster" / "kubeconfig")) as api:
            _assert_pools_at_zero(api)
            with NodeLog(api) as nodes:
                swarm_start = time.time()
                swarm = time.monotonic()
                up = _local(["up", *AUTOSCALING, "--orders", str(ORDERS), "--seed", str(SEED),
                             "--invalid-share", str(INVALID)], env)  # fmt: skip
                swarm = time.monotonic() - swarm
                assert up.returncode == 0, up.stdout + up.stderr
                used = _assert_placement(api, nodes, since=swarm_start)
                zero = wait_for_zero(nodes, timeout=BACK_TO_ZERO_TIMEOUT)
                node_seconds = nodes.node_seconds()
                _assert_within_pool_limits(api, nodes.peak())
        assert "Swarm summary" in up.stdout, up.stdout
        orders, workflows, succeeded, failed = _row(up.stdout, "all")
        assert (orders, failed) == (valid, 0), up.stdout
        assert succeeded == workflows > 0, up.stdout
        assert f"{ORDERS} published, {ORDERS - valid} dead-lettered" in up.stdout, up.stdout

        status = _local(["status", "--json"], env, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        first = json.loads(status.stdout)["processes"]
        assert set(first) == {"dispatcher", "mirror", "fastsub"}, first

        warm = time.monotonic()
        again = _local(["up", *AUTOSCALING, "--orders", "0"], env)
        warm = time.monotonic() - warm
        assert again.returncode == 0, again.stdout + again.stderr
        second = json.loads(_local(["status", "--json"], env, timeout=60).stdout)["processes"]
        assert second == first, "a second `up` replaced running processes"

        shown = _local(["status"], env, timeout=60)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", shown.stdout, re.MULTILINE))
        assert set(exports) >= {"KUBECONFIG", "PUBSUB_EMULATOR_HOST", "DISPATCHER_CONFIG"}
        pointed = {**env, **exports}
        answers = {}
        for command in (
            ["limits", "status", "--json"],
            ["dead-letter", "inspect", "--json", "--idle-timeout", "3"],
            ["status", "-o", "json"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "dispatcher", *command],
                capture_output=True, text=True, env=pointed, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{command}: {done.stderr}"
            answers[command[0]] = json.loads(done.stdout)
        # `status` reaches the local process through its stand-in Pod, as it reaches a pod.
        (replica,) = answers["status"]["replicas"]
        assert replica["reachable"] and replica["pod"] == "burst-dispatcher-local", replica
        assert "emulator" in answers["status"]["backlog_error"]
        caps = {c["class"]: c["cap"] for c in answers["limits"]["classes"]}
        assert caps == {"small": 5, "medium": 3, "large": 1}, caps  # the dev overlay's
        dead = sum(answers["dead-letter"]["counts"].values())
        assert dead == ORDERS - valid, answers["dead-letter"]
        changed = subprocess.run(
            [sys.executable, "-m", "dispatcher", "limits", "set", "--class", "small",
             "--max-live", "2"],
            capture_output=True, text=True, env=pointed, timeout=120, check=False,
        )  # fmt: skip
        assert changed.returncode == 0, changed.stderr
        log = state / "logs" / "dispatcher.log"
        deadline = time.monotonic() + 60
        while '"limits_reloaded"' not in log.read_text():
            assert time.monotonic() < deadline, "the dispatcher did not reload the new limit"
            time.sleep(0.2)

        # Your own orders, and a swarm that cannot finish in time: the command says so and fails.
        mine = "\n".join(example_orders(3, seed=SEED + 1)) + "\n"
        own = _local(["publish", "-"], env, timeout=120, stdin=mine)
        assert own.returncode == 0 and "published 3 orders" in own.stdout, own.stderr
        late = _local(["up", *AUTOSCALING, "--orders", "30", "--timeout", "1"], env)
        assert late.returncode != 0 and "did not finish within 1s" in late.stderr, late.stderr
    finally:
        started = _all_pids(state)
        down = _local(["down"], env, timeout=300)
    assert down.returncode == 0, down.stderr
    assert started, "the stack recorded no processes"
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in started if pid_alive(p)], "processes left running after down"
    assert not state.exists(), "state left behind"
    rounded = {pool: round(seconds) for pool, seconds in node_seconds.items()}
    print(
        f"\nlocal stack (autoscaling): cold up {cold:.1f}s, {ORDERS}-order swarm {swarm:.1f}s, "
        f"pools back to zero {zero:.1f}s after it, warm up {warm:.1f}s; nodes per pool "
        f"{used}, node-seconds {rounded}"
    )


def _assert_within_pool_limits(api: k8s.ApiClient, peak: dict[str, int]) -> None:
    """No pool ever had more nodes than its NodePool's limit (the shipped totalMaxNodeCount)."""
    custom = k8s.CustomObjectsApi(api)
    pools = custom.list_cluster_custom_object("karpenter.sh", "v1", "nodepools")["items"]
    limits = {p["metadata"]["name"]: int(p["spec"]["limits"]["nodes"]) for p in pools}
    over = {pool: (n, limits[pool]) for pool, n in peak.items() if n > limits.get(pool, n)}
    assert not over, f"pools over their node limit (peak, limit): {over}"


def _assert_pools_at_zero(api: k8s.ApiClient) -> None:
    """A NodePool per scaled dev pool, and no pool node at all."""
    listed = k8s.CustomObjectsApi(api).list_cluster_custom_object(*autoscaler.KARPENTER)
    assert {p["metadata"]["name"] for p in listed["items"]} == {"small-spot", "medium-spot",
                                                                "ondemand"}  # fmt: skip
    pool_nodes = k8s.CoreV1Api(api).list_node(label_selector=POOL_LABEL).items
    assert not pool_nodes, [n.metadata.name for n in pool_nodes]


def _assert_placement(api: k8s.ApiClient, nodes: NodeLog, *, since: float) -> dict[str, int]:
    """Every pod of every Workflow on its class's pool or fallback pool; each class's own pool
    scaled from zero during the swarm. Returns the nodes seen per pool."""
    nodes.poll()
    workflows = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "burst-dispatcher", "workflows"
    )["items"]
    assert workflows
    wanted: set[str] = set()
    for wf in workflows:
        args = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
        pool, fallback = args["node-pool"], args["fallback-node-pool"]
        wanted.add(pool)
        ran = [
            n
            for n in wf["status"]["nodes"].values()
            if n["type"] == "Pod" and n.get("hostNodeName")
        ]
        pools = {nodes.pool_of(n["hostNodeName"]) for n in ran}
        assert pools <= {pool, fallback}, (wf["metadata"]["name"], args["size-class"], pools)
        assert pool in pools, (wf["metadata"]["name"], pool, pools)
    spans = nodes.spans()
    assert spans and all(s.created >= since - 1 for s in spans), "a node older than the swarm"
    seen: dict[str, int] = {}
    for span in spans:
        seen[span.pool] = seen.get(span.pool, 0) + 1
    assert wanted <= set(seen), (wanted, seen)
    return seen
