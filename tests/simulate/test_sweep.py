"""The sweep: values parsed from the spec, the frontier and its knee on constructed points."""

from __future__ import annotations

import pytest

from dispatcher.config import Settings
from dispatcher.simulate.sweep import Point, apply, knee, mark, parse_sweep


def _point(value: float, makespan: float, cost: float) -> Point:
    return Point(value=value, makespan=makespan, cost=cost, node_hours=cost, p99=makespan)


def test_the_knee_is_where_more_concurrency_stops_paying() -> None:
    # Makespan halves cheaply up to value 4, then each step buys little for a lot of money;
    # value 6 is dominated (slower and dearer than 4).
    points = [
        _point(1, 1000, 10),
        _point(2, 520, 11),
        _point(4, 300, 12),
        _point(6, 310, 16),
        _point(8, 280, 20),
        _point(16, 270, 40),
    ]
    marked = {p.value: p for p in mark(points)}
    assert [v for v, p in marked.items() if p.knee] == [4]
    assert not marked[6].frontier
    assert all(marked[v].frontier for v in (1, 2, 4, 8, 16))


def test_the_knee_moves_with_the_curve() -> None:
    # 2 -> 3 nearly triples the cost but makes it 4.5 times faster: it pays; 3 -> 4 does not.
    frontier = [_point(1, 1000, 10), _point(2, 900, 11), _point(3, 200, 30), _point(4, 190, 60)]
    best = knee(frontier)
    assert best is not None and best.value == 3
    # With the cost flat, every step that cuts time pays: the knee is where time stops falling
    # (a limit past what the node pool can run buys nothing and is off the frontier).
    flat = [_point(1, 800, 20.0), _point(2, 400, 20.02), _point(3, 300, 20.04)]
    flat += [_point(4, 300.5, 20.05), _point(5, 300.4, 20.06)]
    marked = {p.value: p for p in mark(flat)}
    assert [v for v, p in marked.items() if p.knee] == [3]
    # The cost is the same everywhere (within 0.5 %): 3 is as cheap as any and fastest.
    assert [v for v, p in marked.items() if p.frontier] == [3]


def test_a_spec_names_a_class_field_or_a_global_limit(dev_settings: Settings) -> None:
    sweep = parse_sweep("large.max_live_workflows=5..50", dev_settings)
    assert sweep.values[0] == 5 and sweep.values[-1] == 50 and len(sweep.values) == 10
    assert parse_sweep("small.max_live_workflows=2..8/2", dev_settings).values == (2, 4, 6, 8)
    rate = parse_sweep("limits.workflows_per_second=0.5..2/0.5", dev_settings)
    assert rate.values == (0.5, 1.0, 1.5, 2.0)
    changed = apply(dev_settings, sweep, 7)
    assert changed.size_class("large").max_live_workflows == 7
    assert changed.size_class("small") == dev_settings.size_class("small")
    with pytest.raises(ValueError, match="no class"):
        parse_sweep("huge.max_live_workflows=1..2", dev_settings)
    with pytest.raises(ValueError, match="sweepable"):
        parse_sweep("large.template=1..2", dev_settings)
