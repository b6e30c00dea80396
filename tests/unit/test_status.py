"""``dispatcher status``'s answer per class, from replica reports and the census."""

from __future__ import annotations

from typing import Any

from dispatcher.adapters.replica_status import ReplicaReport
from dispatcher.operator.census import take_census
from dispatcher.operator.status import summarize
from dispatcher.service.status import StatusBoard
from tests.unit.helpers import settings
from tests.unit.test_engine import data, engine


def report(pod: str, **classes: dict[str, Any]) -> ReplicaReport:
    return ReplicaReport(pod, "Running", {"classes": classes, "dead_letters_per_minute": 1.5})


def workflow(size_class: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"burst-dispatcher.io/size-class": size_class}},
        "status": {"phase": phase},
    }


def test_rows_add_up_the_replicas_and_count_live_workflows_once() -> None:
    cfg = settings()
    census = take_census([workflow("small", "Running"), workflow("small", "Succeeded")], cfg)
    status = summarize(
        cfg,
        census,
        [
            report("a", small={"held": 4, "in_flight": 1, "cap": 40, "hold": "rate",
                               "created_per_minute": 3}),
            report("b", small={"held": 2, "in_flight": 0, "cap": 40, "hold": None,
                               "created_per_minute": 2}),
            ReplicaReport("c", "Pending", None, "not running"),
        ],
    )  # fmt: skip
    small = next(c for c in status.classes if c.name == "small")
    assert (small.held, small.in_flight, small.live, small.cap) == (6, 1, 1, 40)
    assert small.created_per_minute == 5 and small.why == "held by the creation rate"
    assert status.dead_letters_per_minute == 3.0 and status.objects == 2
    document = status.to_json()
    assert [r["reachable"] for r in document["replicas"]] == [True, True, False]


def test_why_names_the_strongest_reason() -> None:
    cfg = settings()
    census = take_census([], cfg)

    def why(*holds: str | None, held: int = 1) -> str:
        reports = [report(f"r{i}", small={"held": held, "hold": h}) for i, h in enumerate(holds)]
        return next(c.why for c in summarize(cfg, census, reports).classes if c.name == "small")

    assert why("rate", "paused") == "paused"
    assert why("joining", "class_cap") == "at its cap"
    assert why(None) == "moving"
    assert why(None, held=0) == "no orders held"
    assert next(c.why for c in summarize(cfg, census, []).classes) == "no replica reachable"


def test_the_board_reports_per_minute_rates_and_the_caps_in_force() -> None:
    eng, clock, _ = engine(identity="r1")
    eng.receive("a", data("x"), {})
    board = StatusBoard(replica="r1", environment="dev", clock=clock)
    board.update(eng, created={"small": 10}, dead_lettered=2)
    clock.advance(30)
    board.update(eng, created={"small": 16}, dead_lettered=3)
    small = board.snapshot()["classes"]["small"]
    assert small["held"] == 1 and small["cap"] == eng.limits.class_caps["small"]
    assert small["created_per_minute"] == 12.0
    assert board.snapshot()["dead_letters_per_minute"] == 2.0
