"""Node-seconds per pool from Node lifetimes, and what they cost at the dated list prices.

Why its own module: cost is the figure the swarm benchmark exists for, and it must come from
what a cloud bills (a node from the moment it exists until it is deleted, whether it runs
anything or not), not from what the pods asked for. Node lifetimes come from the watched Node
objects (bench.swarm_watch), so a node that appears and goes between two samples is still
counted; prices come from bench/prices.yaml, whose figures carry their source and date.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRICES = Path(__file__).with_name("prices.yaml")
GIB = 1024**3
_SUFFIX = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": GIB,
    "Ti": 1024**4,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
}


@dataclass(frozen=True)
class NodeLife:
    """One Node as billed: its pool, shape and spot flag, and when it existed (monotonic s)."""

    name: str
    pool: str
    machine: str
    spot: bool
    vcpus: float
    memory_gib: float
    born: float
    gone: float | None = None

    def seconds(self, start: float, end: float) -> float:
        """Its lifetime inside [start, end]."""
        stop = end if self.gone is None else min(self.gone, end)
        return max(0.0, stop - max(self.born, start))


def quantity(text: str) -> float:
    """A Kubernetes quantity ("3920m", "16Gi", "4") as a plain number."""
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    for suffix, factor in _SUFFIX.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def node_shape(node: dict[str, Any]) -> tuple[str, bool, float, float]:
    """(machine type, spot, vCPUs, GiB) of a Node object, from its labels and capacity."""
    labels = node["metadata"].get("labels") or {}
    capacity = (node.get("status") or {}).get("capacity") or {}
    machine = labels.get("node.kubernetes.io/instance-type", "unknown")
    spot = labels.get("cloud.google.com/gke-spot") == "true"
    vcpus = quantity(str(capacity.get("cpu", "0")))
    memory = quantity(str(capacity.get("memory", "0"))) / GIB
    return machine, spot, vcpus, memory


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def hourly(prices: dict[str, Any], *, machine: str, spot: bool, vcpus: float, gib: float) -> float:
    """The list price of one node per hour; KeyError for a family the table does not have."""
    family = prices["families"][machine.split("-", 1)[0]]
    rate = family["spot" if spot else "on_demand"]
    return vcpus * float(rate["vcpu_hour"]) + gib * float(rate["gib_hour"])


def node_seconds(lives: list[NodeLife], *, start: float, end: float) -> dict[str, float]:
    """Seconds of node lifetime per pool inside [start, end]."""
    totals: dict[str, float] = {}
    for life in lives:
        seconds = life.seconds(start, end)
        if seconds > 0:
            totals[life.pool] = totals.get(life.pool, 0.0) + seconds
    return {pool: round(value, 1) for pool, value in sorted(totals.items())}


def cost(
    lives: list[NodeLife], *, start: float, end: float, prices: dict[str, Any]
) -> dict[str, float]:
    """US dollars per pool for the node lifetimes inside [start, end]."""
    totals: dict[str, float] = {}
    for life in lives:
        seconds = life.seconds(start, end)
        if seconds <= 0:
            continue
        rate = hourly(
            prices, machine=life.machine, spot=life.spot, vcpus=life.vcpus, gib=life.memory_gib
        )
        totals[life.pool] = totals.get(life.pool, 0.0) + rate * seconds / 3600
    return {pool: round(value, 6) for pool, value in sorted(totals.items())}
