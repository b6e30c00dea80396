"""A measured swarm on the local stack, written where the calibration reads it.

Why: the simulator's test-cluster model must be fitted to something measured. This runs
``dispatcher local up --orders N --seed S`` (the real dispatcher, emulator, API server, Argo
controller and kwok nodes; private state dirs from ``BURST_LOCAL_STATE_DIR`` /
``BURST_CLUSTER_STATE_DIR``), then reads the Workflows the swarm made from the cluster: when
each order's DAG finished (its latency from the publish), when each Workflow was created and
started, and the makespan ``local up`` reports. It writes ``bench/runs/<name>/result.json``,
the swarm (``swarm.jsonl``) and the configuration the dispatcher ran with (``config.yaml``).

Nodes on the local stack are fixed (one kwok node per dev pool), so node-seconds are the
makespan times the node count: the calibration reports them, but they add no information.

Usage (stack state in /tmp so it does not touch anyone else's):
    BURST_LOCAL_STATE_DIR=/tmp/me-local BURST_CLUSTER_STATE_DIR=/tmp/me-cluster \\
        .venv/bin/python -m bench.local_swarm --orders 300 --seed 21
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatcher.operator.examples import example_orders

RUNS = Path(__file__).parent / "runs"
INVALID_SHARE = 0.01  # what `local up` publishes by default
POOLS = ("small-spot", "medium-spot", "ondemand")  # the dev pools: one kwok node each


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def workflows_since(kubeconfig: Path, since: float) -> list[dict[str, Any]]:
    from kubernetes import client, config

    config.load_kube_config(str(kubeconfig))
    items = client.CustomObjectsApi().list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "burst-dispatcher", "workflows"
    )["items"]
    return [w for w in items if _stamp(w["metadata"]["creationTimestamp"]) >= since - 1]


def measure(workflows: list[dict[str, Any]], makespan: float) -> dict[str, Any]:
    """Order latencies from the publish (= last finish - the makespan ``local up`` saw)."""
    finished = [_stamp(w["status"]["finishedAt"]) for w in workflows]
    published = max(finished) - makespan
    latencies: list[float] = []
    chains: dict[str, list[float]] = {}
    start_lags: list[float] = []
    for w in workflows:
        size_class = w["metadata"]["labels"].get("burst-dispatcher.io/size-class", "?")
        status = w["status"]
        start_lags.append(_stamp(status["startedAt"]) - _stamp(w["metadata"]["creationTimestamp"]))
        for node in status.get("nodes", {}).values():
            if node.get("templateName") == "order" and node.get("type") == "DAG":
                done = _stamp(node["finishedAt"])
                latencies.append(done - published)
                chains.setdefault(size_class, []).append(done - _stamp(node["startedAt"]))
    latencies.sort()

    def pick(share: float) -> float:
        return latencies[max(0, min(len(latencies) - 1, round(share * len(latencies) + 0.5) - 1))]

    return {
        "makespan_seconds": round(makespan, 1),
        "latency_seconds": {"p50": round(pick(0.5), 1), "p99": round(pick(0.99), 1)},
        "node_seconds": round(makespan * len(POOLS), 1),
        "orders_completed": len(latencies),
        "workflows": len(workflows),
        "order_chain_seconds_median": {
            c: round(sorted(v)[len(v) // 2], 1) for c, v in sorted(chains.items())
        },
        "workflow_start_lag_seconds_median": round(sorted(start_lags)[len(start_lags) // 2], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    state = Path(os.environ.get("BURST_LOCAL_STATE_DIR", "~/.cache/burst-dispatcher/local"))
    state = state.expanduser()
    name = args.name or f"local-{args.orders}-s{args.seed}"
    started = time.time()
    command = [
        sys.executable, "-m", "dispatcher", "local", "up",
        "--orders", str(args.orders), "--seed", str(args.seed), "--timeout", str(args.timeout),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    found = re.search(r"\(([0-9.]+)s from publish to the last", done.stdout + done.stderr)
    if done.returncode != 0 or found is None:
        print(f"local up failed (exit {done.returncode})", file=sys.stderr)
        return 1
    workflows = workflows_since(state / "cluster" / "kubeconfig", started)
    run = RUNS / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "swarm.jsonl").write_text(
        "\n".join(example_orders(args.orders, seed=args.seed, invalid_share=INVALID_SHARE)) + "\n"
    )
    shutil.copy(state / "config" / "config.yaml", run / "config.yaml")
    result = {
        "name": name,
        "source": "dispatcher local up (fixed kwok nodes, one per dev pool)",
        "measured_at": datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
        "swarm": "swarm.jsonl",
        "config": "config.yaml",
        "cluster_model": "test-cluster",
        "node_pools": list(POOLS),
        **measure(workflows, float(found.group(1))),
    }
    (run / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
