"""Token bucket and admission: limits are never exceeded, whatever the sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.core.admission import Admit, Caps, Hold, HoldReason, Occupancy, decide
from dispatcher.core.clock import FakeClock
from dispatcher.core.ratelimit import TokenBucket, share


def test_bucket_allows_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.try_acquire() and not bucket.try_acquire()


def test_bucket_reconfigure_never_adds_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=10, clock=clock)
    bucket.reconfigure(rate=100.0, burst=2)
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


@given(
    rate=st.floats(0.1, 50),
    burst=st.integers(1, 20),
    steps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_bucket_never_exceeds_rate_times_time_plus_burst(
    rate: float, burst: int, steps: list[float]
) -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    granted = 0
    for step in steps:
        clock.advance(step)
        while bucket.try_acquire():
            granted += 1
    assert granted <= burst + rate * clock.now + 1e-6


@given(
    live=st.integers(0, 50),
    objects=st.integers(0, 50),
    cap=st.integers(0, 50),
    max_objects=st.integers(1, 50),
)
def test_admission_never_exceeds_caps(live: int, objects: int, cap: int, max_objects: int) -> None:
    bucket = TokenBucket(rate=1, burst=1, clock=FakeClock())
    verdict = decide(Occupancy(live, objects), Caps(cap, max_objects), bucket)
    if isinstance(verdict, Admit):
        assert live + 1 <= cap and objects + 1 <= max_objects
    else:
        assert verdict.reason in {HoldReason.CLASS_CAP, HoldReason.OBJECT_CAP}


def test_rate_hold_says_when_and_spends_no_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert isinstance(decide(Occupancy(0, 0), Caps(5, 5), bucket), Admit)
    held = decide(Occupancy(0, 0), Caps(5, 5), bucket)
    assert held == Hold(HoldReason.RATE, pytest.approx(1.0))
    assert isinstance(decide(Occupancy(5, 0), Caps(5, 5), bucket), Hold)
    clock.advance(1.0)
    assert isinstance(decide(Occupancy(0, 0), Caps(5, 5), bucket), Admit)


def test_share_splits_across_replicas() -> None:
    assert share(10, 4) == 2.5 and share(10, 0) == 10


@given(cap=st.integers(0, 500), replicas=st.integers(1, 20))
def test_cap_shares_add_up_to_the_cap(cap: int, replicas: int) -> None:
    from dispatcher.core.ratelimit import cap_share

    shares = [cap_share(cap, replicas, rank) for rank in range(replicas)]
    assert sum(shares) == cap
    assert max(shares) - min(shares) <= 1
