"""Swarm specs: generated swarms are the example-order generator's, with arrival curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.operator.examples import example_orders, sized_example_orders
from dispatcher.simulate.swarm import parse_swarm


def test_generated_lines_are_compact_json_with_their_size() -> None:
    for line, size in sized_example_orders(500, seed=4, invalid_share=0.1):
        try:
            order = json.loads(line)
        except ValueError:
            assert size == 0
            continue
        if isinstance(order, dict) and order.get("order_id", "").startswith("ord-"):
            assert json.dumps(order, separators=(",", ":")) == line
            assert order["input"]["size_bytes"] == size


def test_a_generated_swarm_is_example_orders_on_a_curve() -> None:
    swarm = parse_swarm("gen:ramp:n=100,seconds=50,seed=9")
    arrivals = list(swarm.arrivals())
    assert [a.line.decode() for a in arrivals] == list(example_orders(100, seed=9))
    times = [a.at for a in arrivals]
    assert times == sorted(times) and times[0] == 0 and times[-1] < 50
    assert swarm.arrived(50) == 100 and swarm.arrived(25) == 26  # a quarter by half time (+1)
    steady = parse_swarm("gen:steady:n=10,rate=2")
    assert [a.at for a in steady.arrivals()][-1] == 4.5


def test_a_file_swarm(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text('{"order_id":"a","input":{"uri":"gs://b/a","size_bytes":7}}\n\n{bad\n')
    swarm = parse_swarm(str(path))
    assert swarm.count == 2 and swarm.curve == "burst"
    assert [a.size_bytes for a in swarm.arrivals()] == [7, 0]


@pytest.mark.parametrize(
    "spec",
    ["gen:burst", "gen:wave:n=3", "gen:ramp:n=3", "gen:steady:n=3", "gen:burst:n", "missing.jsonl"],
)
def test_bad_specs_say_what_is_wrong(spec: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_swarm(spec)
