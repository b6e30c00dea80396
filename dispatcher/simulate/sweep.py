"""``--sweep class.limit=a..b``: one simulation per value, and the cost/time frontier.

Why a frontier and a knee: raising a class cap buys makespan with node-hours, first cheaply,
then dearly, and past the point where the node pool (or another limit) binds, not at all. An
operator wants the value after which more concurrency stops paying: the knee is the last
frontier point reached while each step cut the makespan by at least the factor it raised the
cost (a scale-free rule: it does not depend on the units or on how flat the cost curve is).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dispatcher.core.settings import Settings
from dispatcher.simulate.results import Results

_SPEC = re.compile(
    r"^(?P<target>[a-z][-a-z0-9]*)\.(?P<field>[a-z_]+)="
    r"(?P<low>[0-9.]+)\.\.(?P<high>[0-9.]+)(?:/(?P<step>[0-9.]+))?$"
)
#: Fields a sweep may vary: a class's, or a global limit's (``limits.<field>``).
CLASS_FIELDS = ("max_live_workflows", "max_orders_per_workflow", "max_linger_seconds")
GLOBAL_FIELDS = ("workflows_per_second", "burst", "max_workflow_objects")
FRACTIONAL = ("workflows_per_second", "max_linger_seconds")
DEFAULT_POINTS = 10


@dataclass(frozen=True, slots=True)
class Sweep:
    target: str  # a class name, or "limits"
    field: str
    values: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.target}.{self.field}"


def parse_sweep(spec: str, settings: Settings) -> Sweep:
    """``large.max_live_workflows=5..50`` (10 values) or ``...=5..50/5`` (every 5)."""
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"{spec!r}: expected <class>.<field>=<low>..<high>[/<step>]")
    target, name = match["target"], match["field"]
    if target == "limits":
        if name not in GLOBAL_FIELDS:
            raise ValueError(f"limits.{name}: sweepable are {', '.join(GLOBAL_FIELDS)}")
    else:
        names = [c.name for c in settings.classes]
        if target not in names:
            raise ValueError(
                f"no class {target!r} (classes: {', '.join(names)}; or limits.<field>)"
            )
        if name not in CLASS_FIELDS:
            raise ValueError(f"{target}.{name}: sweepable are {', '.join(CLASS_FIELDS)}")
    low, high = float(match["low"]), float(match["high"])
    if high < low:
        raise ValueError(f"{spec!r}: {high} < {low}")
    integral = name not in FRACTIONAL
    if match["step"]:
        step = float(match["step"])
        count = int((high - low) / step + 1e-9) + 1
        raw = [low + i * step for i in range(count)]
    else:
        count = DEFAULT_POINTS
        raw = [low + (high - low) * i / (count - 1) for i in range(count)]
    values = sorted({round(v) if integral else round(v, 3) for v in raw})
    return Sweep(target, name, tuple(float(v) for v in values))


def apply(settings: Settings, sweep: Sweep, value: float) -> Settings:
    """The configuration with the swept field set to ``value``."""
    typed: float | int = value if sweep.field in FRACTIONAL else int(value)
    if sweep.target == "limits":
        limits = settings.limits.model_copy(update={sweep.field: typed})
        return settings.model_copy(update={"limits": limits})
    classes = [
        c.model_copy(update={sweep.field: typed}) if c.name == sweep.target else c
        for c in settings.classes
    ]
    return settings.model_copy(update={"classes": classes})


@dataclass(frozen=True, slots=True)
class Point:
    value: float
    makespan: float
    cost: float
    node_hours: float
    p99: float
    frontier: bool = False
    knee: bool = False


def run_sweep(
    sweep: Sweep, settings: Settings, simulate: Callable[[Settings], Results]
) -> list[Point]:
    points = []
    for value in sweep.values:
        results = simulate(apply(settings, sweep, value))
        points.append(
            Point(
                value=value,
                makespan=results.makespan,
                cost=results.total_cost,
                node_hours=results.total_node_seconds / 3600,
                p99=results.latency(0.99),
            )
        )
    return mark(points)


#: Relative difference under which two costs (or two makespans) count as the same.
TOLERANCE = 0.005


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(abs(a), abs(b), 1e-9)


def _dominates(q: Point, p: Point) -> bool:
    """``q`` is as cheap and as fast as ``p`` (and better in one, or the lower value)."""
    cost_same, time_same = _same(q.cost, p.cost), _same(q.makespan, p.makespan)
    if cost_same and time_same:
        return q.value < p.value  # a higher limit that buys nothing is not a choice
    return (cost_same or q.cost < p.cost) and (time_same or q.makespan < p.makespan)


def mark(points: Sequence[Point]) -> list[Point]:
    """Flag the Pareto frontier (no other point is both cheaper and faster) and its knee."""
    frontier = [p for p in points if not any(_dominates(q, p) for q in points if q is not p)]
    best = knee(frontier)
    return [replace(p, frontier=p in frontier, knee=best is not None and p is best) for p in points]


def knee(frontier: Sequence[Point]) -> Point | None:
    """Walking the frontier from its cheapest point, the last point every step to which paid:
    the makespan fell by at least the factor the cost rose (``ln(m0/m1) >= ln(c1/c0)``). The
    first step that buys proportionally less time than it costs ends the walk."""
    ordered = sorted(frontier, key=lambda p: (p.cost, p.makespan))
    if not ordered:
        return None
    best = ordered[0]
    for step in ordered[1:]:
        if step.makespan <= 0 or best.cost <= 0:
            break
        if math.log(best.makespan / step.makespan) < math.log(step.cost / best.cost):
            break
        best = step
    return best
