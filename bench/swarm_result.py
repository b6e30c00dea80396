"""One consumer's figures from what the recorder saw during its phase of a swarm run.

Why apart from the run: the figures are pure functions of the recorded Workflows, Node lives and
samples, so the simulator engineer (issue 13) and the tests can recompute them from a saved run,
and the check (every valid order in exactly one Succeeded Workflow) is computed the same way for
the dispatcher and for the naive consumer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.measure import percentile
from bench.swarm_cost import NodeLife, cost, node_seconds
from bench.swarm_watch import WorkflowSeen

#: Pools both consumers need whatever they run (the dispatcher, Argo); left out of cost per order.
SHARED_POOLS = frozenset({"system"})


@dataclass(frozen=True)
class Phase:
    """One consumer's share of a run: its environment label, its orders, its time window."""

    consumer: str
    environment: str
    published: int
    valid: frozenset[str]
    started: float  # the publish began
    published_s: float  # how long publishing took
    ended: float  # the last Workflow finished, or the deadline
    zero_at: float | None  # every pool but the shared ones had no node (autoscaling only)
    window_end: float  # node-seconds are counted up to here
    dead_lettered: int


def check(phase: Phase, workflows: list[WorkflowSeen]) -> dict[str, Any]:
    """Lost, duplicated and failed orders of the phase, by the order-ids annotation."""
    succeeded: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    for seen in workflows:
        mine = seen.orders & phase.valid
        anywhere.update(mine)
        if seen.phase == "Succeeded":
            succeeded.update(mine)
    return {
        "orders_in_workflows": len(anywhere),
        "succeeded_once": sum(1 for n in succeeded.values() if n == 1),
        "lost": len(phase.valid - set(succeeded)),
        "duplicated": sum(1 for n in anywhere.values() if n > 1),
        "failed_workflows": sum(1 for w in workflows if w.phase in {"Failed", "Error"}),
    }


def figures(
    phase: Phase,
    *,
    workflows: list[WorkflowSeen],
    nodes: list[NodeLife],
    samples: list[dict[str, Any]],
    prices: dict[str, Any],
) -> dict[str, Any]:
    """The keys of result.json (documented in bench/swarm.py) for one consumer."""
    mine = [w for w in workflows if w.environment == phase.environment and w.orders & phase.valid]
    done = [w for w in mine if w.finished is not None]
    latencies = sorted(
        w.finished - phase.started
        for w in done
        if w.phase == "Succeeded" and w.finished is not None
        for _ in w.orders & phase.valid
    )
    last = max((w.finished for w in done if w.finished is not None), default=phase.ended)
    makespan = max(last - phase.started, 1e-9)
    ok_orders = len(latencies)
    window = [s for s in samples if phase.started <= s["t"] <= phase.window_end]
    seconds = node_seconds(nodes, start=phase.started, end=phase.window_end)
    dollars = cost(nodes, start=phase.started, end=phase.window_end, prices=prices)
    billed = sum(v for pool, v in dollars.items() if pool not in SHARED_POOLS)
    return {
        "consumer": phase.consumer,
        "orders": len(phase.valid),
        "published": phase.published,
        "dead_lettered": phase.dead_lettered,
        "publish_s": round(phase.published_s, 2),
        "workflows": len(mine),
        "makespan_s": round(makespan, 1),
        "latency_p50_s": round(percentile(latencies, 50), 1) if latencies else None,
        "latency_p99_s": round(percentile(latencies, 99), 1) if latencies else None,
        "workflows_per_min": round(len(done) / makespan * 60, 2),
        "orders_per_min": round(ok_orders / makespan * 60, 1),
        "peak_workflow_objects": max(
            (s["workflow_objects"].get(phase.environment, 0) for s in window), default=0
        ),
        "etcd_bytes_start": window[0]["etcd_bytes"] if window else None,
        "etcd_bytes_peak": max((s["etcd_bytes"] for s in window), default=None),
        "node_seconds": seconds,
        "preemptions": sum(w.retried_attempts for w in mine),
        "preempted_orders_retried": sum(w.retried_orders for w in mine),
        "back_to_zero_s": None if phase.zero_at is None else round(phase.zero_at - last, 1),
        "cost_usd": dollars,
        "cost_per_order_usd": round(billed / max(ok_orders, 1), 8),
        "check": check(phase, mine),
    }


def series(phase: Phase, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The phase's samples with t from its first publish (seconds)."""
    return [
        {**s, "t": round(s["t"] - phase.started, 2)}
        for s in samples
        if phase.started - 1.5 <= s["t"] <= phase.window_end
    ]
