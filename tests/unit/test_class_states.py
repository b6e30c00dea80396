"""Paused and draining classes in the engine: held apart from the cap, never starving others."""

from __future__ import annotations

from dataclasses import replace

from dispatcher.core.admission import HoldReason
from dispatcher.core.decisions import Decision, Repark
from dispatcher.core.engine import Engine
from dispatcher.core.limits import LimitsChanged
from tests.unit.test_engine import BIG, creates, data, engine


def states(eng: Engine[str], **by_class: str) -> list[Decision[str]]:
    limits = replace(eng.limits, class_states=by_class)
    return eng.limits_changed(LimitsChanged(limits))


def reparked(decisions: list[Decision[str]]) -> list[str]:
    return [d.order_id for d in decisions if isinstance(d, Repark)]


def test_a_paused_class_admits_nothing_and_says_why_while_others_go() -> None:
    eng, clock, _ = engine()
    assert states(eng, large="paused") == []
    assert eng.receive("m1", data("big", BIG), {}) == []
    assert eng.last_hold["large"] is HoldReason.PAUSED
    eng.receive("m2", data("small"), {})
    clock.advance(5)
    [create] = creates(eng.tick())
    assert create.size_class == "small" and eng.last_hold["large"] is HoldReason.PAUSED
    assert eng.held_orders()["large"] == 1
    [resumed] = creates(states(eng))
    assert resumed.order_ids == ("big",) and eng.last_hold["large"] is None


def test_pausing_re_parks_everything_the_class_holds_and_nothing_else() -> None:
    eng, _, _ = engine()
    eng.limits_changed(
        LimitsChanged(replace(eng.limits, class_caps={**eng.limits.class_caps, "large": 0}))
    )
    for n in range(3):
        assert eng.receive(f"m{n}", data(f"big-{n}", BIG), {}) == []
    eng.receive("s", data("small-1"), {})  # in an open batch (linger 5 s)
    decisions = states(eng, large="paused")
    assert sorted(reparked(decisions)) == ["big-0", "big-1", "big-2"] and not creates(decisions)
    assert eng.held_orders() == {"small": 1, "medium": 0, "large": 0}


def test_draining_creates_what_the_limits_admit_now_and_re_parks_the_rest() -> None:
    eng, _, _ = engine()
    caps = {**eng.limits.class_caps, "large": 1}
    eng.limits_changed(LimitsChanged(replace(eng.limits, class_caps=caps)))
    [first] = creates(eng.receive("m0", data("big-0", BIG), {}))
    assert eng.receive("m1", data("big-1", BIG), {}) == []  # at the cap of 1
    eng.receive("s", data("small-1"), {})  # an open batch: linger not over
    decisions = states(eng, large="draining", small="draining")
    [created] = creates(decisions)
    assert created.order_ids == ("small-1",)  # the open batch is closed and created now
    assert reparked(decisions) == ["big-1"]
    assert eng.in_flight() == 2 and first.order_ids == ("big-0",)  # in flight: goes on
    # Nothing arrives for a draining class in class_topics routing; what is held is gone.
    assert eng.held_orders() == {"small": 0, "medium": 0, "large": 0}


def test_draining_then_resuming_admits_as_before() -> None:
    eng, clock, _ = engine()
    states(eng, small="draining")
    assert creates(states(eng)) == []
    eng.receive("s", data("small-2"), {})
    clock.advance(5)
    assert [c.order_ids for c in creates(eng.tick())] == [("small-2",)]
