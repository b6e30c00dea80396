"""Claims: the stored form, who contests what, and what the engine does with a contest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.adapters.claims_memory import MemoryClaims, MemoryClaimStore
from dispatcher.core import claims
from dispatcher.core.clock import FakeClock
from dispatcher.core.decisions import Ack, Repark
from dispatcher.core.outcomes import Created, NotClaimed
from dispatcher.errors import TransientError
from tests.unit.test_engine import BIG, creates, data, engine


@given(st.dictionaries(st.binary(min_size=12, max_size=12), st.integers(0, 2**32 - 1)))
def test_entries_round_trip(entries: dict[bytes, int]) -> None:
    assert claims.unpack(claims.pack(entries)) == entries
    assert claims.unpack(claims.pack(entries) + b"torn") == entries


def test_a_claim_is_contested_only_while_it_holds() -> None:
    book = claims.ClaimBook(hold_seconds=30)
    book.add(claims.digests_of(["a", "b"]), now=100)
    theirs = claims.unpack(book.blob())
    mine = claims.digests_of(["b", "c"])
    assert claims.contested(mine, [theirs], now=120) == frozenset({"b"})
    assert claims.contested(mine, [theirs], now=132) == frozenset()
    book.withdraw(claims.digests_of(["b"]))
    assert claims.contested(mine, [claims.unpack(book.blob())], now=120) == frozenset()


def test_two_replicas_pause_differently_and_longer_each_time() -> None:
    a = [claims.pause_seconds("r1", "o", n) for n in range(1, 4)]
    b = [claims.pause_seconds("r2", "o", n) for n in range(1, 4)]
    assert a != b
    assert a == sorted(a) and all(1 <= p <= 30 for p in a + b)


def test_the_twin_withdraws_a_contested_claim_and_renewals_never_contest() -> None:
    clock, store = FakeClock(), MemoryClaimStore()
    first = MemoryClaims(store=store, identity="a", clock=clock)
    second = MemoryClaims(store=store, identity="b", clock=clock)
    assert first.claim(["x"], renew=False) == frozenset()
    assert second.claim(["x", "y"], renew=False) == frozenset({"x"})
    assert first.claim(["x"], renew=True) == frozenset()
    # b withdrew x: a third replica contests only y (b's) and x (a's).
    third = MemoryClaims(store=store, identity="c", clock=clock)
    assert third.claim(["x", "y"], renew=False) == frozenset({"x", "y"})
    store.failures = 1
    try:
        first.claim(["z"], renew=False)
    except TransientError:
        pass
    else:
        raise AssertionError("a failing store must fail the claim")


def test_a_contested_order_waits_for_the_other_workflow_the_rest_is_batched_again() -> None:
    eng, _clock, cluster = engine(identity="r1")
    [create] = creates(eng.receive("a", data("big-a", BIG), {}))
    decisions = eng.outcome(NotClaimed(create.name, ("big-a",)))
    assert creates(decisions) == [] and eng.in_flight() == 0
    assert eng.held_orders()["large"] == 1
    # The other replica's Workflow shows up: the copy held here is acked, never created.
    cluster.record_created("bd-large-other", "large", ("big-a",))
    [ack] = eng.tick()
    assert isinstance(ack, Ack) and ack.receipts == ("a",)
    assert eng.idle()


def test_uncontested_companions_go_first_and_a_withdrawn_order_is_tried_after_its_pause() -> None:
    eng, clock, _ = engine(identity="r1")
    medium = 300 * 1024 * 1024
    eng.receive("a", data("m-a", medium), {})
    eng.receive("b", data("m-b", medium), {})
    clock.advance(600)
    [create] = creates(eng.tick())
    assert set(create.order_ids) == {"m-a", "m-b"}
    [again] = creates(eng.outcome(NotClaimed(create.name, ("m-a",))))
    assert again.order_ids == ("m-b",) and again.name != create.name
    eng.outcome(Created(again.name))
    clock.advance(claims.pause_seconds("r1", "m-a", 1) + 0.01)
    [retry] = creates(eng.tick())
    assert retry.order_ids == ("m-a",) and retry.attempt == 1


def test_a_failed_claim_pauses_the_whole_batch_and_drain_reparks_what_waits() -> None:
    eng, _clock, _ = engine(identity="r1")
    [create] = creates(eng.receive("a", data("big-a", BIG), {}))
    assert creates(eng.outcome(NotClaimed(create.name, (), "api down"))) == []
    assert creates(eng.tick()) == []
    [repark] = eng.drain()
    assert isinstance(repark, Repark) and repark.receipts == ("a",)
    assert eng.idle()


def test_an_order_that_waited_past_its_hold_is_reparked_not_batched() -> None:
    eng, clock, _ = engine(identity="r1")
    [create] = creates(eng.receive("a", data("big-a", BIG), {}))
    clock.advance(eng.settings.pubsub.max_hold_seconds())
    [repark] = eng.outcome(NotClaimed(create.name, ("big-a",)))
    assert isinstance(repark, Repark)
    assert eng.idle()
