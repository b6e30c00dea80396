"""The figures one run produces, as plain dataclasses (the JSON report is ``asdict`` of them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.measure import Cpu


@dataclass
class PhaseResult:
    name: str
    orders: int
    seconds: float
    orders_per_second: float
    cpu: Cpu
    bench_cpu_us_per_order: float
    thread_cpu_us_per_order: dict[str, float]
    create_calls: int | None = None
    api_writes: int | None = None
    writes_per_order: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seconds = round(self.seconds, 3)
        self.orders_per_second = round(self.orders_per_second)


@dataclass
class HoldResult:
    held_orders: int
    seconds_to_hold: float
    rss_bytes: int
    hwm_bytes: int
    baseline_rss_bytes: int
    bytes_per_held_order: float


@dataclass
class LatencyResult:
    orders: int
    publish_rate: float
    achieved_publish_rate: float
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    mean_s: float
    workflows: int
    linger_s: float
    cpu: Cpu


@dataclass
class Target:
    figure: str
    measured: str
    target: str
    met: bool | None


def cpu_per_order(cpu: Cpu, seconds: float, orders: int) -> float:
    """Microseconds of this process's CPU per order."""
    return round(cpu.bench * seconds / orders * 1e6, 1)
