"""What a simulation reports: makespan, latency, node-hours and cost, peaks, and a timeline.

Kept apart from the loop so the CLI, the sweep and the calibration read one value with one
document shape (``to_document``), whatever produced it.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """The state at one autoscaler scan, for the plot."""

    at: float
    backlog: int
    live: int
    objects: int
    nodes: dict[str, int]


def percentile(values: array[float] | list[float], share: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not len(values):
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


@dataclass
class Results:
    classes: list[str]
    pools: list[str]
    orders: int = 0
    makespan: float = 0.0
    simulated_seconds: float = 0.0
    dead_lettered: int = 0
    duplicates: int = 0
    reparked: int = 0
    preemptions: int = 0  # step attempts lost to spot preemption (bench.swarm counts the same)
    retries: int = 0  # orders that ran some step again (bench.swarm: preempted_orders_retried)
    peak_live_total: int = 0
    peak_objects: int = 0
    #: per order: its publish -> its own step chain done
    latencies: array[float] = field(default_factory=lambda: array("d"))
    #: per order: its publish -> its whole Workflow done (what a Workflow watch can see)
    workflow_latencies: array[float] = field(default_factory=lambda: array("d"))
    workflows: dict[str, int] = field(default_factory=dict)
    peak_live: dict[str, int] = field(default_factory=dict)
    node_seconds: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    peak_nodes: dict[str, int] = field(default_factory=dict)
    timeline: list[Sample] = field(default_factory=list)

    @property
    def total_cost(self) -> float:
        return sum(self.cost.values())

    @property
    def total_node_seconds(self) -> float:
        return sum(self.node_seconds.values())

    def latency(self, share: float, *, workflow: bool = False) -> float:
        return percentile(self.workflow_latencies if workflow else self.latencies, share)

    def to_document(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def at(share: float) -> float:
            return percentile(ordered, share)

        return {
            "orders": self.orders,
            "completed": len(ordered),
            "dead_lettered": self.dead_lettered,
            # held back for good (a cap of 0, a paused class) when the run hit its horizon
            "not_completed": self.orders - len(ordered) - self.dead_lettered,
            "makespan_seconds": round(self.makespan, 3),
            "latency_seconds": {"p50": round(at(0.5), 3), "p99": round(at(0.99), 3)},
            "workflows": self.workflows,
            "peak_live_workflows": {"total": self.peak_live_total, **self.peak_live},
            "peak_workflow_objects": self.peak_objects,
            "preemptions": self.preemptions,
            "retries": self.retries,
            "reparked": self.reparked,
            "pools": {
                name: {
                    "node_hours": round(self.node_seconds.get(name, 0.0) / 3600, 4),
                    "peak_nodes": self.peak_nodes.get(name, 0),
                    "cost_usd": round(self.cost.get(name, 0.0), 4),
                }
                for name in self.pools
            },
            "node_hours": round(self.total_node_seconds / 3600, 4),
            "cost_usd": round(self.total_cost, 4),
            "simulated_seconds": round(self.simulated_seconds, 3),
        }
