"""A streaming replay's pure parts: when a pass takes a dead letter and stops, how it is paced,
and how its progress and summary are written, on a fake clock (no server, no sleeping)."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from dispatcher.commands.output import print_document
from dispatcher.commands.progress import Meter
from dispatcher.core.clock import FakeClock
from dispatcher.core.ratelimit import Pacer
from dispatcher.core.replay import DeadLetterRecord, Selection, parse_since
from dispatcher.core.sweep import Sweep


def record(n: int, reason: str = "template_missing") -> DeadLetterRecord:
    return DeadLetterRecord(
        message_id=str(n), data=b"{}", attributes={"dlq_reason": reason, "order_id": f"o-{n}"}
    )


def test_a_sweep_counts_everything_and_chooses_what_matches() -> None:
    sweep = Sweep(
        selection=Selection(reasons=frozenset({"schema"})), clock=FakeClock(), idle_timeout=5
    )
    chosen = sweep.take([record(1), record(2, "schema"), record(3), record(4, "schema")])
    assert [r.message_id for r in chosen] == ["2", "4"]
    assert (sweep.looked_at, sweep.chosen, sweep.passed_over) == (4, 2, 2)
    assert sweep.reason_counts() == [("schema", 2), ("template_missing", 2)]
    assert not sweep.should_stop()


def test_a_sweep_stops_only_after_idle_timeout_without_fresh_messages() -> None:
    clock = FakeClock()
    sweep = Sweep(selection=Selection(), clock=clock, idle_timeout=10)
    clock.advance(9)
    sweep.take([record(1)])  # a fresh message restarts the idle wait
    clock.advance(9)
    assert not sweep.should_stop() and sweep.idle_left() == pytest.approx(1)
    sweep.take([])
    clock.advance(1)
    assert sweep.should_stop() and sweep.stopped == "no new dead letter for 10s"


def test_limit_and_max_scan_stop_a_sweep() -> None:
    limited = Sweep(selection=Selection(), clock=FakeClock(), idle_timeout=5, limit=3)
    assert len(limited.take([record(n) for n in range(5)])) == 3
    assert limited.should_stop() and limited.stopped == "--limit 3 reached"
    capped = Sweep(selection=Selection(), clock=FakeClock(), idle_timeout=5, max_scan=7)
    capped.take([record(n) for n in range(5)])
    assert capped.next_pull(500) == 2
    capped.take([record(5), record(6)])
    assert capped.should_stop() and capped.stopped == "--max-scan 7 reached"
    unbounded = Sweep(selection=Selection(), clock=FakeClock(), idle_timeout=5)
    assert unbounded.next_pull(500) == 500


@given(st.lists(st.sampled_from(["schema", "template_missing", "no_size_class"]), max_size=60))
def test_a_sweep_chooses_each_matching_message_once_within_the_limit(reasons: list[str]) -> None:
    sweep = Sweep(
        selection=Selection(reasons=frozenset({"schema", "no_size_class"})),
        clock=FakeClock(),
        idle_timeout=5,
        limit=10,
    )
    records = [record(n, reason) for n, reason in enumerate(reasons)]
    chosen = [r for start in range(0, len(records), 7) for r in sweep.take(records[start:][:7])]
    matching = [r for r in records if r.reason != "template_missing"]
    assert chosen == matching[:10]
    assert sweep.looked_at == len(records)


def test_a_pacer_holds_the_rate_and_works_while_it_waits() -> None:
    clock = FakeClock()
    renewals: list[float] = []
    pacer = Pacer(rate=4, clock=clock, sleep=clock.advance)
    start = clock()
    for _ in range(4 + 20):
        pacer.take(while_waiting=lambda: renewals.append(clock()))
    # 4 saved up at the start, then 20 more at 4/s: 5 seconds.
    assert clock() - start == pytest.approx(5)
    assert renewals and all(b - a <= 1.0 + 1e-9 for a, b in itertools.pairwise(renewals))
    assert (
        pacer.batch_size(500) == 4
        and Pacer(rate=0.5, clock=clock, sleep=clock.advance).batch_size(500) == 1
    )


def test_a_slow_pacer_renews_at_least_every_second() -> None:
    clock = FakeClock()
    calls: list[float] = []
    pacer = Pacer(rate=0.1, clock=clock, sleep=clock.advance)
    pacer.take()
    pacer.take(while_waiting=lambda: calls.append(clock()))
    assert len(calls) >= 10 and clock() >= 1000 + 10 - 1e-9


def test_a_plain_meter_writes_lines_at_its_interval(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    with Meter("replaying", total=None, live=False, clock=clock, every=5) as meter:
        for done in range(1, 11):
            clock.advance(1)
            meter.update(done=done * 100, looked_at=done * 150)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "replaying: 500 done, 750 looked at, 100/s, 5s"
    assert lines[-1] == "replaying: 1,000 done, 1,500 looked at, 100/s, 10s"
    assert len(lines) == 3


def test_documents_print_as_json_or_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    document = {"replayed": 3, "reasons": [{"reason": "schema", "replayed": 3}], "ok": None}
    print_document(document, "json")
    assert json.loads(capsys.readouterr().out) == document
    print_document(document, "yaml")
    assert yaml.safe_load(io.StringIO(capsys.readouterr().out)) == document
    with pytest.raises(ValueError):
        print_document(document, "table")


def test_a_live_meter_draws_counts_and_rate() -> None:
    clock = FakeClock()
    screen = Console(file=io.StringIO(), force_terminal=True, width=120)
    with Meter("replaying", total=400, live=True, clock=clock, screen=screen) as meter:
        clock.advance(2)
        meter.update(done=200, looked_at=300)
        assert meter.rate == pytest.approx(100)
    drawn = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "200/400" in drawn and "300 looked at" in drawn and "100/s" in drawn


def test_stage_and_since_narrow_a_selection() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    old = DeadLetterRecord(
        "1", b"{}", {"dlq_stage": "create"}, published_at=now - timedelta(hours=3)
    )
    new = DeadLetterRecord("2", b"{}", {"dlq_stage": "validate"}, published_at=now)
    undated = DeadLetterRecord("3", b"{}", {"dlq_stage": "create"})
    since = Selection(since=parse_since("2h", now=now))
    assert [since.matches(r) for r in (old, new, undated)] == [False, True, False]
    stage = Selection(stages=frozenset({"create"}))
    assert [stage.matches(r) for r in (old, new, undated)] == [True, False, True]
    assert parse_since("90m", now=now) == now - timedelta(minutes=90)
    assert parse_since("2026-12-01T10:00:00", now=now) == now - timedelta(hours=2)
    assert parse_since("2026-12-01T11:00:00+01:00", now=now) == now - timedelta(hours=2)
    for wrong in ("2 hours", "h", "-5m", "yesterday"):
        with pytest.raises(ValueError):
            parse_since(wrong, now=now)
