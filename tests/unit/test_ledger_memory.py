"""The ledger's in-memory twin keeps the real ledger's promises, synchronously."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.adapters.ledger_memory import MemoryLedger, MemoryLedgerStore
from dispatcher.core.clock import FakeClock
from dispatcher.core.ports import OrderLedger
from dispatcher.errors import TransientError

WINDOW = 86_400.0


class Done:
    def __init__(self) -> None:
        self.results: list[BaseException | None] = []

    def __call__(self, error: BaseException | None) -> None:
        self.results.append(error)


def test_record_is_contained_and_durable_at_once() -> None:
    ledger: OrderLedger = MemoryLedger(clock=FakeClock(0.0))
    done = Done()
    assert not ledger.contains("o-1")
    ledger.record(["o-1", "o-2"], done)
    assert done.results == [None]
    assert ledger.contains("o-1") and ledger.contains("o-2")
    assert not ledger.contains("o-3")


@given(
    batches=st.lists(
        st.tuples(st.lists(st.text(min_size=1, max_size=20), max_size=5), st.floats(0, 2 * WINDOW)),
        max_size=20,
    ),
    probe=st.floats(0, 2 * WINDOW),
)
def test_no_false_negative_inside_the_window_and_expiry_after_it(
    batches: list[tuple[list[str], float]], probe: float
) -> None:
    clock = FakeClock(0.0)
    ledger = MemoryLedger(clock=clock, window_seconds=WINDOW)
    last_seen: dict[str, float] = {}
    for order_ids, step in batches:
        clock.advance(step)
        ledger.record(order_ids, lambda _: None)
        last_seen.update(dict.fromkeys(order_ids, clock.now))
    clock.advance(probe)
    for order_id, seen in last_seen.items():
        assert ledger.contains(order_id) == (clock.now - seen < WINDOW)


def test_a_restarted_replica_sees_what_was_made_durable() -> None:
    clock = FakeClock(0.0)
    store = MemoryLedgerStore()
    first = MemoryLedger(store=store, clock=clock)
    first.record(["kept"], lambda _: None)
    restarted = MemoryLedger(store=store, clock=clock)
    restarted.start()
    assert restarted.synced()
    assert restarted.contains("kept")


def test_a_failed_write_stays_local_until_a_later_write_succeeds() -> None:
    clock = FakeClock(0.0)
    store = MemoryLedgerStore()
    ledger = MemoryLedger(store=store, clock=clock)
    ledger.fail_next(1)
    done = Done()
    ledger.record(["late"], done)
    assert isinstance(done.results[0], TransientError)
    assert ledger.contains("late")  # this process still refuses a second Workflow
    assert not ledger.durable("late")
    assert not MemoryLedger(store=store, clock=clock).contains("late")  # lost by a restart
    assert ledger.pending() == 1
    ledger.record(["next"], done)
    assert done.results[1] is None
    assert ledger.durable("late") and ledger.durable("next")
    assert ledger.pending() == 0


def test_injected_error_is_passed_through() -> None:
    ledger = MemoryLedger(clock=FakeClock(0.0))
    boom = RuntimeError("disk on fire")
    ledger.fail_next(2, boom)
    done = Done()
    for _ in range(3):
        ledger.record(["x"], done)
    assert done.results == [boom, boom, None]
